"""What a finished run looks like: its folders, file names and manifest, as typed values.

    OUT/attributions/part-SSSSS-of-NNNNN.parquet   token rows (annotate)
    OUT/documents/part-SSSSS-of-NNNNN.parquet      document rows (annotate)
    OUT/errors/part-SSSSS-of-NNNNN.jsonl           dead letters
    OUT/summaries/groups.jsonl                     corpus summaries (annotate)
    OUT/curves.parquet, summary.json, results.md   faithfulness results (evaluate; curves.png too)
    OUT/manifest.json                              written last: a valid one marks a finished run
    OUT/_RUNNING                                   while a run writes the folder: who claimed it

A folder without a valid manifest (none, empty, unparsable) holds no finished run, whatever part
files it shows: a killed run can leave ``_RUNNING`` and part files, never a manifest.

Writers (``transforms/writers.py``, ``transforms/summaries.py``, ``pipeline/stages.py``), readers
(``report``, ``show``) and tests import these names instead of repeating them. This module needs
neither Beam nor torch, so that reading a run stays fast.
"""

from __future__ import annotations

import datetime
import json
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

MANIFEST_FILE = "manifest.json"
# The manifest is written under this name, then renamed (local disks); a leftover is never a manifest.
MANIFEST_TEMP_FILE = ".manifest.json.tmp"
# A run's claim on its output folder, from before its first write until it ends. The leading "_"
# keeps it out of the inputs when the folder is read back (``expand_inputs`` skips such names).
RUNNING_FILE = "_RUNNING"


@dataclass(frozen=True)
class PartFiles:
    """A folder of sharded files from a Beam sink: ``{folder}/{prefix}-SSSSS-of-NNNNN{suffix}``."""

    folder: str
    suffix: str
    prefix: str = "part"

    @property
    def pattern(self) -> str:
        """Glob of the part files inside ``folder``."""
        return f"{self.prefix}-*-of-*{self.suffix}"

    def name(self, shard: int, shards: int) -> str:
        """Path of part ``shard`` (0-based) of ``shards``, relative to the run folder."""
        return f"{self.folder}/{self.prefix}-{shard:05d}-of-{shards:05d}{self.suffix}"

    def shard_of(self, name: str) -> tuple[int, int]:
        """``(shard, shards)`` of a part file's name (any folder before it), as ``name`` writes it.

        Raises:
            ValueError: the name is not one of these part files'.
        """
        base = name.rsplit("/", 1)[-1]
        match = re.fullmatch(rf"{re.escape(self.prefix)}-(\d+)-of-(\d+){re.escape(self.suffix)}", base)
        if match is None:
            raise ValueError(f"{name} is not a {self.folder} part file")
        return int(match.group(1)), int(match.group(2))

    def paths(self, run: Path) -> list[Path]:
        """The part files of a local run folder, in shard order."""
        return sorted((Path(run) / self.folder).glob(self.pattern))


@dataclass(frozen=True)
class SingleFile:
    """One unsharded file in a folder of the run: ``{folder}/{stem}{suffix}``."""

    folder: str
    stem: str
    suffix: str

    @property
    def name(self) -> str:
        """Path relative to the run folder."""
        return f"{self.folder}/{self.stem}{self.suffix}"

    def path(self, run: Path) -> Path:
        """The file in a local run folder."""
        return Path(run) / self.folder / f"{self.stem}{self.suffix}"


ATTRIBUTIONS = PartFiles("attributions", ".parquet")
DOCUMENTS = PartFiles("documents", ".parquet")
ERRORS = PartFiles("errors", ".jsonl")
GROUPS = SingleFile("summaries", "groups", ".jsonl")
# evaluate's result files, in the run folder itself (``transforms/evaluate_results.py`` writes them);
# the plot is written only when there is something to draw and matplotlib is installed.
CURVES = "curves.parquet"
SUMMARY = "summary.json"
TABLE = "results.md"
PLOT = "curves.png"
RESULTS = (CURVES, SUMMARY, TABLE)
RESULT_FILES = (*RESULTS, PLOT)
# The ``segment`` of tokens a chat template wrote (role markers, a default system prompt): token rows
# of response runs carry it so that views can leave them out.
TEMPLATE = "template"
# Every folder a run writes part files to: cleared before a run and after a failed one.
PART_FOLDERS = (ATTRIBUTIONS.folder, DOCUMENTS.folder, ERRORS.folder, GROUPS.folder)


class RunNotFoundError(FileNotFoundError):
    """The folder is not a finished normxlogit run: no manifest.json, or one that is not a manifest."""


def _time(value: str | None) -> datetime.datetime | None:
    return None if value is None else datetime.datetime.fromisoformat(value)


def _iso(value: datetime.datetime | None) -> str | None:
    return None if value is None else value.isoformat()


@dataclass(frozen=True)
class RunHeader:
    """What every command's manifest starts with.

    Attributes:
        model: ``normxlogit.loading.ModelInfo`` as JSON (label ids as strings).
    """

    command: str
    start_time: datetime.datetime | None
    inputs: tuple[str, ...]
    input_files: int | None
    output: str
    runner: str
    model: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """The header's manifest keys, in the manifest's order."""
        return {**asdict(self), "start_time": _iso(self.start_time), "inputs": list(self.inputs)}

    @classmethod
    def from_dict(cls, body: dict[str, Any]) -> RunHeader:
        """The header from a manifest; keys older runs lack are None."""
        return cls(
            command=body["command"],
            start_time=_time(body.get("start_time")),
            inputs=tuple(body.get("inputs", ())),
            input_files=body.get("input_files"),
            output=body["output"],
            runner=body["runner"],
            model=body["model"],
        )


@dataclass(frozen=True)
class AnnotateCounts:
    """``annotate``'s counts: ``records_read = docs_annotated + skipped_empty + errors``; tokens = rows."""

    DONE: ClassVar[str] = "docs_annotated"

    records_read: int
    docs_annotated: int
    skipped_empty: int
    errors: int
    tokens: int

    @property
    def reconciles(self) -> bool:
        """Every record read is annotated, skipped as empty or a dead letter."""
        return self.records_read == self.docs_annotated + self.skipped_empty + self.errors


@dataclass(frozen=True)
class EvaluateCounts:
    """``evaluate``'s counts: ``records_read = docs_evaluated + skipped_empty + errors``."""

    DONE: ClassVar[str] = "docs_evaluated"

    records_read: int
    docs_evaluated: int
    skipped_empty: int
    errors: int

    @property
    def reconciles(self) -> bool:
        """Every record read is evaluated, skipped as empty or a dead letter."""
        return self.records_read == self.docs_evaluated + self.skipped_empty + self.errors


Counts = AnnotateCounts | EvaluateCounts
COUNTS: dict[str, type[Counts]] = {cls.DONE: cls for cls in (AnnotateCounts, EvaluateCounts)}


def counts_from_dict(counts: dict[str, int]) -> Counts:
    """The typed counts of a manifest's ``counts``, by the key that names the records done."""
    named = [cls for done, cls in COUNTS.items() if done in counts]
    if len(named) != 1:
        raise ValueError(f"counts must name exactly one of {', '.join(COUNTS)}: {sorted(counts)}")
    return named[0](**counts)


@dataclass(frozen=True)
class Batching:
    """Positions the forward passes ran (tokens plus padding), and their ratio to the real tokens."""

    padded_tokens: int
    padding_ratio: float | None

    @classmethod
    def of(cls, tokens: int, padded_tokens: int) -> Batching:
        """The batching of a run that wrote ``tokens`` rows from ``padded_tokens`` positions."""
        return cls(padded_tokens, round(padded_tokens / tokens, 4) if tokens else None)


@dataclass(frozen=True)
class OutputFiles:
    """The finalised files of a run by kind, relative to the run folder; None: not written by this command.

    Field order is the manifest's key order (annotate: attributions, errors, summaries; evaluate:
    results, errors).
    """

    attributions: tuple[str, ...] | None = None
    documents: tuple[str, ...] | None = None
    results: tuple[str, ...] | None = None
    errors: tuple[str, ...] | None = None
    summaries: tuple[str, ...] | None = None

    @classmethod
    def kinds(cls) -> tuple[str, ...]:
        """The kinds of output a run can list."""
        return tuple(f.name for f in fields(cls))

    @classmethod
    def of(cls, files: dict[str, Any]) -> OutputFiles:
        """Files by kind (any iterable of names), each kind sorted.

        Raises:
            ValueError: a kind that is not one of ``kinds()``.
        """
        unknown = sorted(set(files) - set(cls.kinds()))
        if unknown:
            raise ValueError(f"unknown output kinds {unknown}; known: {', '.join(cls.kinds())}")
        return cls(**{kind: tuple(sorted(names)) for kind, names in files.items()})

    def to_dict(self) -> dict[str, list[str]]:
        """``{kind: [names]}`` for the kinds this run wrote."""
        return {k: list(v) for k in self.kinds() if (v := getattr(self, k)) is not None}

    def all(self) -> list[str]:
        """Every listed file."""
        return [name for names in self.to_dict().values() for name in names]


def _json_value(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _tuple_value(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


class _Section:
    """A manifest section: one dataclass, written as its fields in order (tuples as JSON lists).

    Read back, a key an older run lacks takes the field's default; ``init=False`` fields are derived.
    """

    # Keys written only when their value is not None (a field added after runs without it were
    # written: those manifests stay as they were).
    OPTIONAL_KEYS: ClassVar[tuple[str, ...]] = ()

    def to_dict(self) -> dict[str, Any]:
        """The section's JSON values, keys in field order (``OPTIONAL_KEYS`` only when not None)."""
        return {
            f.name: _json_value(getattr(self, f.name))
            for f in fields(self)
            if not (f.name in self.OPTIONAL_KEYS and getattr(self, f.name) is None)
        }

    @classmethod
    def from_dict(cls, body: dict[str, Any]):
        """The section from its JSON values.

        Raises:
            TypeError: a key without a default is missing (not a manifest section).
        """
        return cls(**{f.name: _tuple_value(body[f.name]) for f in fields(cls) if f.init and f.name in body})


@dataclass(frozen=True)
class TargetSection(_Section):
    """``annotate``'s ``target``: what each record's token scores are for.

    Attributes:
        mode: ``prediction``, ``field`` (``--target-field``), ``fixed`` (``--target``), or a response
            run's ``response``, ``chat`` or ``generate``.
        foil: the contrastive foil: a class or token for every record, or a response run's ``top``
            (each step against the model's own most likely other token).
        contrastive: derived: a foil was given.
        max_new_tokens: ``generate``'s longest answer.
        step_scores: response runs kept each token's score at every step.
        chat_template: ``--chat-template``: plain prompts went through the chat template.
        system_prompt: chats: ``--system-prompt``, the system message put first in chats without one.
        no_default_system_prompt: chats: ``--no-default-system-prompt`` was given.
        system_prompt_variable: the chat template's variable set to stop its default system prompt.
    """

    mode: str
    target: str | None = None
    target_field: str | None = None
    foil: str | None = None
    contrastive: bool = field(init=False, default=False)
    response_field: str | None = None
    messages_field: str | None = None
    max_new_tokens: int | None = None
    step_scores: bool = False
    chat_template: bool = False
    system_prompt: str | None = None
    no_default_system_prompt: bool = False
    system_prompt_variable: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "contrastive", self.foil is not None)


@dataclass(frozen=True)
class AnnotateOptionsSection(_Section):
    """``annotate``'s ``options``: fields read, lengths, batching, layers, kept fields and devices."""

    text_field: str | None = None
    id_field: str | None = None
    max_length: int | None = None
    batch_tokens: int | None = None
    docs_per_batch: int | None = None
    layers: tuple[int, ...] = ()
    keep_fields: tuple[str, ...] = ()
    device: str | None = None
    dtype: str | None = None
    padding_side: str | None = None
    model_copies: int | None = None
    large_model: bool = False
    # Response runs: the summaries count the tokens a chat template wrote (``--include-template``).
    include_template: bool = False


@dataclass(frozen=True)
class EvaluateOptionsSection(_Section):
    """``evaluate``'s ``options``: fields read, lengths, batching and devices."""

    text_field: str | None = None
    id_field: str | None = None
    max_length: int | None = None
    batch_tokens: int | None = None
    docs_per_batch: int | None = None
    device: str | None = None
    dtype: str | None = None


@dataclass(frozen=True)
class FaithfulnessSection(_Section):
    """``evaluate``'s ``faithfulness`` on a labelled corpus: the methods compared and how.

    Attributes:
        seed: seeds the random baseline (its first ranking) and the summary's bootstrap.
        replacement_token: the token that replaces removed ones.
        target: what is explained (always the prediction).
        label_field: the record field holding each record's label.
        random_seeds: rankings the random baseline averaged per document (seeds seed..seed+R-1);
            runs before it was recorded had one.
        bootstrap: document-bootstrap replicates of the summary's intervals (None: a run before
            intervals).
        loo_max_tokens: the cap on taucorr_loo's text length (None: a run before ferret's metrics).
    """

    methods: tuple[str, ...]
    seed: int
    ig_steps: int
    k_percents: tuple[int, ...]
    replacement_token: str
    target: str = "prediction"
    label_field: str | None = None
    random_seeds: int = 1
    bootstrap: int | None = None
    loo_max_tokens: int | None = None


@dataclass(frozen=True)
class ResponseFaithfulnessSection(_Section):
    """``evaluate``'s ``faithfulness`` of a response run (``mode`` ``response``).

    Attributes:
        mode: always ``MODE``: what tells this section from ``FaithfulnessSection``.
        response_source: ``response``, ``messages`` or ``generate``.
        generate: ``--generate``'s longest answer (None without it).
        system_prompt, no_default_system_prompt: chats: ``--system-prompt`` and
            ``--no-default-system-prompt``.
        random_seeds, bootstrap: as in ``FaithfulnessSection``.
        ig_steps: Integrated Gradients steps, written only when ``integrated_gradients`` is among the
            methods.
    """

    MODE: ClassVar[str] = "response"
    OPTIONAL_KEYS: ClassVar[tuple[str, ...]] = ("ig_steps",)

    mode: str = field(init=False, default=MODE)
    methods: tuple[str, ...]
    seed: int
    k_percents: tuple[int, ...]
    replacement_token: str
    response_source: str
    response_field: str | None = None
    messages_field: str | None = None
    generate: int | None = None
    system_prompt: str | None = None
    no_default_system_prompt: bool = False
    random_seeds: int = 1
    bootstrap: int | None = None
    ig_steps: int | None = None


def _versions(body: dict[str, Any]) -> dict[str, str]:
    return dict(body.get("versions", {}))


@dataclass(frozen=True)
class AnnotateSections:
    """``annotate``'s own manifest sections, in order: ``target``, ``options``, ``versions``.

    Attributes:
        versions: Python and the packages that decide the results, by name.
    """

    FIRST: ClassVar[str] = "target"

    target: TargetSection
    options: AnnotateOptionsSection = AnnotateOptionsSection()
    versions: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The sections' manifest keys, in the manifest's order."""
        return {"target": self.target.to_dict(), "options": self.options.to_dict(), "versions": self.versions}

    @classmethod
    def from_dict(cls, body: dict[str, Any]) -> AnnotateSections:
        """The sections of a manifest's JSON values."""
        return cls(
            TargetSection.from_dict(body["target"]),
            AnnotateOptionsSection.from_dict(body.get("options", {})),
            _versions(body),
        )


@dataclass(frozen=True)
class EvaluateSections:
    """``evaluate``'s own manifest sections, in order: ``faithfulness``, ``options``, ``versions``."""

    FIRST: ClassVar[str] = "faithfulness"

    faithfulness: FaithfulnessSection | ResponseFaithfulnessSection
    options: EvaluateOptionsSection = EvaluateOptionsSection()
    versions: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The sections' manifest keys, in the manifest's order."""
        return {
            "faithfulness": self.faithfulness.to_dict(),
            "options": self.options.to_dict(),
            "versions": self.versions,
        }

    @classmethod
    def from_dict(cls, body: dict[str, Any]) -> EvaluateSections:
        """The sections of a manifest's JSON values (a response run's ``faithfulness`` by its mode)."""
        faithfulness = body["faithfulness"]
        kind = (
            ResponseFaithfulnessSection
            if faithfulness.get("mode") == ResponseFaithfulnessSection.MODE
            else FaithfulnessSection
        )
        return cls(
            kind.from_dict(faithfulness),
            EvaluateOptionsSection.from_dict(body.get("options", {})),
            _versions(body),
        )


Sections = AnnotateSections | EvaluateSections
SECTIONS: tuple[type[Sections], ...] = (AnnotateSections, EvaluateSections)


def sections_from_dict(body: dict[str, Any]) -> Sections:
    """The typed sections of a manifest, by the key its command's sections start with."""
    named = [cls for cls in SECTIONS if cls.FIRST in body]
    if len(named) != 1:
        raise ValueError(f"a manifest has exactly one of the sections {', '.join(c.FIRST for c in SECTIONS)}")
    return named[0].from_dict(body)


@dataclass(frozen=True)
class Manifest:
    """``OUT/manifest.json``: what was run, on what, and what it wrote.

    Attributes:
        header: command, inputs, output, runner, model.
        sections: the command's own description (``AnnotateSections``: ``target``, ``options``,
            ``versions``; ``EvaluateSections``: ``faithfulness``, ``options``, ``versions``).
        counts: records by fate; they reconcile.
        files: the finalised output files.
        batching: annotate's padding figures.
        end_time: when the manifest was written.
    """

    header: RunHeader
    sections: Sections
    counts: Counts
    files: OutputFiles
    batching: Batching | None = None
    end_time: datetime.datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        """The manifest as JSON values, keys in the order ``manifest.json`` has them."""
        body = {**self.header.to_dict(), **self.sections.to_dict()}
        if self.batching is not None:
            body["batching"] = asdict(self.batching)
        body["end_time"] = _iso(self.end_time)
        body["counts"] = asdict(self.counts)
        body["files"] = self.files.to_dict()
        return body

    def to_json(self) -> str:
        """The text of ``manifest.json``."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=False)

    @classmethod
    def from_dict(cls, body: dict[str, Any]) -> Manifest:
        """A manifest from its JSON values.

        Raises:
            ValueError, KeyError, TypeError: ``body`` is not a manifest.
        """
        batching = body.get("batching")
        return cls(
            header=RunHeader.from_dict(body),
            sections=sections_from_dict(body),
            counts=counts_from_dict(body["counts"]),
            files=OutputFiles.of(body.get("files", {})),
            batching=None if batching is None else Batching(**batching),
            end_time=_time(body.get("end_time")),
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> Manifest:
        """A manifest from the text of ``manifest.json``."""
        return cls.from_dict(json.loads(text))


@dataclass(frozen=True)
class RunDescription:
    """A manifest less what only the finished run knows (counts, files, batching, end time)."""

    header: RunHeader
    sections: Sections

    def finished(
        self,
        counts: Counts,
        files: OutputFiles,
        end_time: datetime.datetime,
        batching: Batching | None = None,
    ) -> Manifest:
        """The manifest of the finished run."""
        return Manifest(self.header, self.sections, counts, files, batching=batching, end_time=end_time)


@dataclass(frozen=True)
class RunningMarker:
    """``OUT/_RUNNING``: which process claimed the folder, and when.

    Attributes:
        pid, host: the launcher process that runs the pipeline (and removes the marker at its end).
        start_time: when the claim was made.
    """

    pid: int
    host: str
    start_time: datetime.datetime

    def to_json(self) -> str:
        """The text of ``_RUNNING``."""
        return json.dumps({**asdict(self), "start_time": _iso(self.start_time)})

    @classmethod
    def from_json(cls, text: str | bytes) -> RunningMarker | None:
        """The marker in ``text``; None for one that is not a marker (empty, cut short, foreign)."""
        try:
            body = json.loads(text)
            return cls(int(body["pid"]), str(body["host"]), _time(body["start_time"]))
        except (ValueError, KeyError, TypeError, AttributeError):
            return None

    def describe(self) -> str:
        """``pid 123 on host h, started 2025-...``."""
        return f"pid {self.pid} on host {self.host}, started {_iso(self.start_time)}"


def read_running_marker(run: Path) -> tuple[bool, RunningMarker | None]:
    """Whether a local run folder holds a running marker, and the marker (None if unreadable)."""
    path = Path(run) / RUNNING_FILE
    try:
        return True, RunningMarker.from_json(path.read_bytes())
    except FileNotFoundError:
        return False, None
    except OSError:
        return True, None


def unfinished_reason(run: Path, problem: str) -> str:
    """One line: why ``run`` holds no finished run (``problem``), what was left, and what to do."""
    run = Path(run)
    present, marker = read_running_marker(run)
    parts = [p for files in (ATTRIBUTIONS, DOCUMENTS, ERRORS) for p in files.paths(run)]
    if present:
        who = marker.describe() if marker else "an unreadable marker"
        left = f"; {run / RUNNING_FILE} names the run that is writing it or was stopped ({who})"
    elif parts:
        left = f"; its {len(parts)} part file(s) are left from a run that did not finish"
    else:
        left = ""
    return (
        f"{run} is not a finished normxlogit run ({problem}){left}; pass the --output folder of a "
        "completed `normxlogit annotate`, or re-run into it with --overwrite"
    )


def read_manifest(run: Path) -> Manifest:
    """The manifest of a local run folder.

    A folder without a valid manifest holds no finished run, even if part files are there.

    Raises:
        RunNotFoundError: no ``manifest.json``, an empty one, or one that is not a manifest; the
            message is one line that says what the folder holds and what to pass instead.
    """
    run = Path(run)
    path = run / MANIFEST_FILE
    if not path.is_file():
        raise RunNotFoundError(unfinished_reason(run, f"no {MANIFEST_FILE}"))
    text = path.read_bytes()
    if not text.strip():
        raise RunNotFoundError(unfinished_reason(run, f"{MANIFEST_FILE} is empty"))
    try:
        return Manifest.from_json(text)
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        problem = f"{MANIFEST_FILE} is not a normxlogit manifest ({type(err).__name__}: {err})"
        raise RunNotFoundError(unfinished_reason(run, " ".join(problem.split()))) from err


def read_annotate_manifest(output: Path) -> Manifest:
    """The manifest of a finished ``annotate`` run (local folder).

    Raises:
        RunNotFoundError: no manifest, or the manifest of another command (e.g. ``evaluate``).
    """
    manifest = read_manifest(output)
    if not isinstance(manifest.counts, AnnotateCounts) or not isinstance(manifest.sections, AnnotateSections):
        raise RunNotFoundError(
            f"{output} holds a `normxlogit {manifest.header.command}` run, which has no token rows; pass "
            "the --output folder of a completed `normxlogit annotate`"
        )
    return manifest
