"""A run's counts, taken from what it wrote and checked against what the runner counted.

Runners can lose records without failing: Beam's DaskRunner drops what a DoFn emits in
``finish_bundle`` (a reader's last batch, a sink's last shard) and reports no metrics, so a run
could write empty part files and a valid manifest. Before the manifest is written, the launcher:

1. lists the part files of each output folder and refuses a set with a shard missing
   (``part-00003-of-00005`` without ``part-00004``);
2. counts what they hold: rows of ``documents/`` and ``attributions/`` from the Parquet footers,
   lines of ``errors/``, the documents of the corpus summary (annotate), ``samples`` of
   ``summary.json`` (evaluate);
3. compares these with the runner's counters (``transforms/counters.py``): documents, token rows
   and dead letters must be equal, and the records the readers counted must equal the documents
   written + the records skipped as empty + the dead letters written;
4. where the runner reports no counters at all, counts the records the inputs hold (the readers'
   own parse, in the launcher) and accepts the run only when the inputs hold none.

Any difference fails the run in one line (``LostRecordsError``) that names the runner and both
figures; no manifest is written, so the folder holds no finished run. The manifest's
``docs_annotated``/``docs_evaluated``, ``tokens`` and ``errors`` are the files' figures.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, fields

import pyarrow.parquet as pq
from apache_beam.io.filesystem import BeamIOError, CompressionTypes
from apache_beam.io.filesystems import FileSystems

from normxlogit.transforms.counters import (
    DEAD_LETTERS,
    DOCS_ANNOTATED,
    FILES_READ,
    SKIPPED_EMPTY,
    TOKENS,
    RunnerCounts,
)
from normxlogit.transforms.layout import (
    ATTRIBUTIONS,
    COUNTS,
    DOCUMENTS,
    ERRORS,
    GROUPS,
    PLOT,
    RESULTS,
    SUMMARY,
    AnnotateCounts,
    Counts,
    EvaluateCounts,
    OutputFiles,
    PartFiles,
)
from normxlogit.transforms.sources import FieldSpec, InputFileError, read_file
from normxlogit.transforms.summary_stats import CORPUS
from normxlogit.transforms.writers import join

_CHUNK = 1 << 20


class LostRecordsError(RuntimeError):
    """The files a run wrote do not hold every record its runner counted, or cannot be checked."""


@dataclass(frozen=True)
class Written:
    """What an output folder holds once its pipeline has ended.

    Attributes:
        files: the finalised files by kind, relative to the run folder.
        done: documents annotated (rows of ``documents/``) or evaluated (``summary.json`` samples).
        errors: dead letters (lines of ``errors/``).
        tokens: token rows of ``attributions/`` (annotate; None for evaluate).
        summarized: documents the corpus summary counts (annotate; None without a summary file).
    """

    files: OutputFiles
    done: int
    errors: int
    tokens: int | None = None
    summarized: int | None = None


def _exists(path: str) -> bool:
    try:
        return FileSystems.exists(path)
    except BeamIOError as err:
        raise LostRecordsError(f"cannot check {path}, so the run cannot be checked: {err}") from err


def list_parts(output: str, parts: PartFiles) -> list[str]:
    """The part files of ``parts`` under ``output``, relative to it, in shard order.

    Raises:
        LostRecordsError: the set is incomplete (a shard of ``-of-N`` missing) or mixes counts.
    """
    pattern = join(output, parts.folder, parts.pattern)
    try:
        found = FileSystems.match([pattern])[0].metadata_list  # none found: an empty list
    except BeamIOError as err:
        raise LostRecordsError(f"cannot list {pattern}, so the run cannot be checked: {err}") from err
    root = join(output, "")
    names = sorted(m.path.removeprefix(root) for m in found)
    try:
        shards = [parts.shard_of(name) for name in names]
    except ValueError as err:
        raise LostRecordsError(
            f"{join(output, parts.folder)} holds a file the run did not write: {err}"
        ) from err
    totals = {total for _, total in shards}
    if names and (len(totals) != 1 or {shard for shard, _ in shards} != set(range(totals.pop()))):
        raise LostRecordsError(
            f"{join(output, parts.folder)} holds an incomplete set of part files ({', '.join(names)}): "
            "a shard was lost"
        )
    return names


def _open(output: str, name: str):
    return FileSystems.open(join(output, name), compression_type=CompressionTypes.UNCOMPRESSED)


def parquet_rows(output: str, names: list[str]) -> int:
    """Rows of the Parquet files ``names`` (relative to ``output``), from their footers."""
    total = 0
    for name in names:
        with _open(output, name) as fh:
            total += pq.ParquetFile(fh).metadata.num_rows
    return total


def line_count(output: str, names: list[str]) -> int:
    """Lines of the text files ``names`` (relative to ``output``); every line ends in a newline."""
    total = 0
    for name in names:
        with _open(output, name) as fh:
            while chunk := fh.read(_CHUNK):
                total += chunk.count(b"\n")
    return total


def written_annotation(output: str) -> Written:
    """What an ``annotate`` run wrote: documents, token rows, dead letters and the corpus summary.

    Raises:
        LostRecordsError: a part-file set is incomplete.
    """
    attributions, documents, errors = (list_parts(output, p) for p in (ATTRIBUTIONS, DOCUMENTS, ERRORS))
    summaries = [GROUPS.name] if _exists(join(output, GROUPS.name)) else []
    summarized = None
    for name in summaries:
        with _open(output, name) as fh:
            # Lines end in "\n" only: str.splitlines would also split at U+2028 inside a word.
            for line in filter(None, fh.read().split(b"\n")):
                group = json.loads(line)
                if group.get("kind") == CORPUS:
                    summarized = int(group["docs"])
    files = OutputFiles.of(
        {"attributions": attributions, "documents": documents, "errors": errors, "summaries": summaries}
    )
    return Written(
        files,
        done=parquet_rows(output, documents),
        errors=line_count(output, errors),
        tokens=parquet_rows(output, attributions),
        summarized=summarized,
    )


def written_evaluation(output: str) -> Written:
    """What an ``evaluate`` run wrote: its result files (``summary.json`` counts the documents) and
    dead letters.

    Raises:
        LostRecordsError: a result file missing, or an incomplete set of dead-letter files.
    """
    errors = list_parts(output, ERRORS)
    missing = [name for name in RESULTS if not _exists(join(output, name))]
    if missing:
        raise LostRecordsError(f"{', '.join(join(output, name) for name in missing)} not written")
    with _open(output, SUMMARY) as fh:
        samples = int(json.loads(fh.read())["samples"])
    # Earlier runs' files were cleared when the folder was claimed: a plot here is this run's.
    results = [*RESULTS, *([PLOT] if _exists(join(output, PLOT)) else [])]
    files = OutputFiles.of({"results": results, "errors": errors})
    return Written(files, done=samples, errors=line_count(output, errors))


def input_records(paths: list[str], fields: FieldSpec) -> int | None:
    """The records the input files hold, as the readers parse them (dead letters included); None
    when a file cannot be read. It reads every input once more: used only when a runner reports
    no counters."""
    try:
        return sum(1 for path in paths for _ in read_file(path, fields))
    except (InputFileError, OSError):
        return None


def reconcile(
    runner: str,
    done: str,
    counted: RunnerCounts | None,
    written: Written,
    inputs_hold: Callable[[], int | None],
    input_files: int,
) -> Counts:
    """The manifest's counts, once the runner's counters and the written files agree.

    Args:
        runner: the runner's name, for messages.
        done: ``docs_annotated`` or ``docs_evaluated`` (picks the counts class).
        counted: the runner's counters; None when it reported none.
        written: what the output folder holds.
        inputs_hold: the number of records the inputs hold (None when it cannot be known); called
            only when the runner reported no counters.
        input_files: how many input files the run was given (each must have been read).

    Raises:
        LostRecordsError: one line naming the runner and each figure that differs.
    """
    noun = "annotated documents" if done == DOCS_ANNOTATED else "evaluated documents"
    if counted is None:
        held = inputs_hold()
        if held == 0 and written.done == 0 and written.errors == 0:
            cls = COUNTS[done]
            return cls(**{f.name: 0 for f in fields(cls)})
        what = "an unknown number of records" if held is None else f"{held:,} records"
        unaccounted = "" if held is None else f" ({held - written.done - written.errors:,} unaccounted for)"
        raise LostRecordsError(
            f"the runner {runner} reported no counts, so the run cannot be checked for lost records: the "
            f"inputs hold {what}, the files hold {written.done:,} {noun} and {written.errors:,} dead "
            f"letters{unaccounted}"
        )
    pairs = [(noun, counted[done], written.done), ("dead letters", counted[DEAD_LETTERS], written.errors)]
    if written.tokens is not None:
        pairs.append(("token rows", counted[TOKENS], written.tokens))
    if done == DOCS_ANNOTATED and written.done and written.summarized != written.done:
        pairs.append((f"{noun} in {GROUPS.name}", written.done, written.summarized or 0))
    skipped = counted[SKIPPED_EMPTY]
    accounted = written.done + skipped + written.errors
    differ = [f"{what}: the runner counted {a:,}, the files hold {b:,}" for what, a, b in pairs if a != b]
    if counted.records_read != accounted:
        differ.append(
            f"records read: the readers counted {counted.records_read:,}, the files account for "
            f"{accounted:,} ({written.done:,} {noun} + {written.errors:,} dead letters + {skipped:,} "
            "skipped as empty)"
        )
    if counted[FILES_READ] != input_files:
        differ.append(f"input files read: the readers counted {counted[FILES_READ]:,} of {input_files:,}")
    if differ:
        hint = (
            ""
            if counted.committed
            else " (this runner reports attempted counters only: a bundle it retried is counted twice)"
        )
        raise LostRecordsError(f"the runner {runner} lost records: {'; '.join(differ)}{hint}")
    counts = {"records_read": counted.records_read, done: written.done, "skipped_empty": skipped}
    counts["errors"] = written.errors
    if done == DOCS_ANNOTATED:
        return AnnotateCounts(**counts, tokens=written.tokens or 0)
    return EvaluateCounts(**counts)
