"""What every corpus command (``annotate``, ``evaluate``) shares around its model step.

Before the pipeline: absolute local paths, input expansion, model checks, the output folder.
In the pipeline: read -> drop repeated ids -> validate, with every dead letter kept and every
record counted, and a manifest written last, once every output file is finalised.
"""

from __future__ import annotations

import datetime
import gc
import os
import platform
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from importlib import metadata
from typing import Any, Generic, Protocol, TypeVar

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.runners.runner import PipelineState

from normxlogit.loading import ModelInfo, resolve_device
from normxlogit.pipeline.interrupts import signals_ignored
from normxlogit.pipeline.options import LOCAL_RUNNER, local_runner
from normxlogit.pipeline.output_folder import (  # noqa: F401  (OutputExistsError: cli.py catches it here)
    OutputExistsError,
    abandon_output,
    check_output,
    claim_output,
    release_output,
)
from normxlogit.pipeline.reconcile import Written, input_records, reconcile
from normxlogit.pipeline.runners import check_runner
from normxlogit.transforms.counters import RunnerCounts
from normxlogit.transforms.dedupe import DUPLICATES, DropRepeats, FindRepeatedIds
from normxlogit.transforms.layout import Batching, Counts, Manifest, RunDescription, RunHeader
from normxlogit.transforms.model_handler import ModelSpec
from normxlogit.transforms.records import RecordBatch, escape_surrogates, has_surrogates
from normxlogit.transforms.sources import FieldSpec, InputError, InputFileError, ReadRecords
from normxlogit.transforms.validate import (
    DEAD_LETTER,
    CheckBatchIds,
    ValidateTextBatch,
)
from normxlogit.transforms.writers import write_manifest

F = TypeVar("F")
_VERSIONED = ("normxlogit", "torch", "transformers", "apache-beam", "pyarrow", "numpy", "tokenizers")
_LOCAL_RUNNERS = ("FnApiRunner", "DirectRunner", "BundleBasedDirectRunner")


class CorpusConfig(Protocol):
    """The fields every corpus command's config has."""

    inputs: tuple[str, ...]
    output: str
    spec: ModelSpec
    fields: FieldSpec
    overwrite: bool


def _absolute(path: str) -> str:
    return os.path.abspath(path) if FileSystems.get_scheme(path) is None else path


def with_absolute_paths(cfg: CorpusConfig) -> Any:
    """``cfg`` with its local input, output and model paths made absolute.

    Workers of a portable runner (a worker pool, Flink, Spark) do not run in the launcher's
    working directory, so a relative path would name another file there, or none. URLs and
    object-store paths are left as they are.
    """
    spec = cfg.spec if cfg.spec.path is None else replace(cfg.spec, path=_absolute(cfg.spec.path))
    inputs = tuple(_absolute(p) for p in cfg.inputs)
    return replace(cfg, inputs=inputs, output=_absolute(cfg.output), spec=spec)


def package_versions() -> dict[str, str]:
    """Python and the versions of the packages that decide the results, for manifests."""
    out = {"python": platform.python_version()}
    for name in _VERSIONED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def check_file_names(paths: list[str]) -> None:
    """Refuse input files whose names are not valid UTF-8 (bytes Python decodes as lone surrogates):
    no Beam string coder, Parquet ``source`` column or doc_id can hold them.

    Raises:
        InputError: naming the first such file, its bad bytes escaped.
    """
    for path in paths:
        if has_surrogates(path):
            raise InputError(
                f"{escape_surrogates(path)}: the file name is not valid UTF-8 (escaped here); rename the "
                "file, or leave it out of the inputs"
            )


@dataclass(frozen=True)
class Preflight(Generic[F]):
    """What the checks before a run found: the expanded inputs, the model, the runner; whether the
    output folder may be taken over (``--overwrite``); what the command's own model check found.

    Attributes:
        model_facts: what ``preflight``'s ``check_model`` returned (evaluate: the token that replaces
            masked ones; None for a check that finds nothing to keep).
    """

    source: ReadRecords
    info: ModelInfo
    runner: str
    overwrite: bool = False
    model_facts: F | None = None

    def manifest_header(self, command: str, cfg: CorpusConfig) -> RunHeader:
        """The part of a manifest every command writes the same way; the run starts now."""
        info = self.info
        return RunHeader(
            command=command,
            start_time=datetime.datetime.now(datetime.timezone.utc),
            inputs=tuple(cfg.inputs),
            input_files=len(self.source.paths),
            output=cfg.output,
            runner=self.runner,
            model={**asdict(info), "labels": {str(k): v for k, v in info.labels.items()}},
        )


def preflight(
    cfg: CorpusConfig, options: PipelineOptions, check_model: Callable[[ModelInfo], F] = lambda _: None
) -> Preflight[F]:
    """Check everything that can be checked before a run starts (the output folder is claimed and
    cleared when the run starts, ``run_to_manifest``). What ``check_model`` returns comes back as
    the ``model_facts`` of the result.

    Raises:
        UnsupportedRunnerError, InputError, ModelLoadError, UnsupportedModelError, OutputExistsError
        (and its ``OutputBusyError``, ``OutputNotWritableError``; see ``pipeline/output_folder.py``), and
        whatever ``check_model`` raises.
    """
    check_runner(str(options.view_as(StandardOptions).runner))
    FileSystems.set_options(options)  # s3:// and gs:// listing needs the pipeline options
    source = ReadRecords(list(cfg.inputs), cfg.fields)  # expands inputs: fails fast
    check_file_names(source.paths)
    info = cfg.spec.inspect()
    facts = check_model(info)
    runner = str(options.view_as(StandardOptions).runner or "DirectRunner")  # Beam's own default
    if runner in _LOCAL_RUNNERS:
        resolve_device(cfg.spec.device)  # local workers share this machine's devices
    check_output(cfg.output, cfg.overwrite)
    return Preflight(source, info, runner, cfg.overwrite, facts)


@dataclass(frozen=True)
class RunOutputs:
    """How a command's finished run is counted: what it wrote, and what its manifest adds.

    Attributes:
        done: the count of records that got through (``docs_annotated``, ``docs_evaluated``).
        written: the output folder -> what it holds (``reconcile.written_annotation``, ...).
        batching: the reconciled counts and the runner's counters -> the manifest's ``batching``
            (annotate's); None: the command's manifest has none.
    """

    done: str
    written: Callable[[str], Written]
    batching: Callable[[Counts, RunnerCounts], Batching] | None = None


def run_to_manifest(
    options: PipelineOptions,
    pre: Preflight,
    description: RunDescription,
    build: Callable[[beam.Pipeline], None],
    outputs: RunOutputs,
) -> Counts:
    """Claim the output folder, run the pipeline that ``build`` composes; once it has ended,
    reconcile its counts with the files it wrote (``pipeline/reconcile.py``) and write the manifest;
    return its counts.

    A failed run, or one whose files do not hold every record the runner counted, removes its
    manifest (if it got that far) and its part folders, so it leaves no partial results behind;
    success or failure, the run's ``_RUNNING`` marker is removed at the end.

    The objects alive when the run starts (the imported libraries: this process's own, and the
    local runner's workers') are frozen for its duration (``gc.freeze``; see
    ``model_handler.settle_heap``) and unfrozen after it, so that a long-lived caller's heap is
    collected as before.

    Raises:
        LostRecordsError: the files and the runner's counts differ (or cannot be checked).
    """
    output = description.header.output
    claim_output(output, pre.overwrite)  # nothing in the folder is this run's before it
    gc.freeze()
    try:
        try:
            runner = (
                local_runner(options) if options.view_as(StandardOptions).runner == LOCAL_RUNNER else None
            )
            p = beam.Pipeline(runner=runner, options=options)
            build(p)
            result = p.run()
            state = result.wait_until_finish()
            if state is not None and state != PipelineState.DONE:
                raise RuntimeError(f"the runner {pre.runner} ended the pipeline in state {state}")
            manifest = finished_manifest(result, pre, description, outputs)
            write_manifest(output, manifest)
        except BaseException as err:
            with signals_ignored():  # a second Ctrl-C must not leave half the files
                abandon_output(output)
            user_error = user_error_from_worker(err)
            if user_error is not None:
                raise user_error from err
            raise
        return manifest.counts
    finally:
        gc.unfreeze()
        with signals_ignored():
            release_output(output)


def finished_manifest(result, pre: Preflight, description: RunDescription, outputs: RunOutputs) -> Manifest:
    """The manifest of the pipeline run ``result``, its counts reconciled with what it wrote.

    Raises:
        LostRecordsError: see ``reconcile.reconcile``.
    """
    output = description.header.output
    counted = RunnerCounts.from_result(result)
    written = outputs.written(output)
    paths = pre.source.paths
    counts = reconcile(
        pre.runner,
        outputs.done,
        counted,
        written,
        lambda: input_records(paths, pre.source.fields),
        len(paths),
    )
    batching = outputs.batching(counts, counted or RunnerCounts({})) if outputs.batching else None
    return description.finished(
        counts, written.files, end_time=datetime.datetime.now(datetime.timezone.utc), batching=batching
    )


# Errors a user can fix that workers raise while the pipeline runs (a whole input file that cannot
# be read). Runners whose workers are not this thread (Beam's threads and processes, a portable
# runner) report them as traceback text, with the original type and message on one line.
WORKER_USER_ERRORS: tuple[type[Exception], ...] = (InputFileError,)


def worker_error_marker(cls: type[Exception]) -> str:
    """How a traceback line starts that names an exception of ``cls``."""
    return f"{cls.__module__}.{cls.__qualname__}: "


def user_error_from_worker(err: BaseException) -> Exception | None:
    """The user error ``err`` carries from a worker, as its own type and its own message (without
    Beam's ``[while running ...]`` step name), else None when ``err`` needs no change."""
    if isinstance(err, WORKER_USER_ERRORS):  # raised in this thread: only the step name to drop
        message = _without_step(str(err))
        return None if message == str(err) else type(err)(message)
    for line in str(err).splitlines():
        for cls in WORKER_USER_ERRORS:
            marker = worker_error_marker(cls)
            if line.startswith(marker):
                return cls(_without_step(line[len(marker) :]))
    return None


def _without_step(message: str) -> str:
    return re.sub(r" \[while running '.*'\]$", "", message)


@dataclass
class ValidRecords:
    """The records that reach the model, and the dead letters of those that left before."""

    valid: Any
    dead: list


def read_valid_batches(
    p: beam.Pipeline,
    source: ReadRecords,
    fields: FieldSpec,
    batch_size: int,
    validate: ValidateTextBatch | None = None,
) -> ValidRecords:
    """Read, check ids, drop repeated ids and validate texts, one Beam element per batch of
    ``batch_size`` records, not per record.

    Files are read into batches (``RecordBatch``); ids are checked; the batches, each one value to
    the runner (``RecordBatchCoder``: packed, never a record at a time), are spread over the
    workers (and threads) that score them, where repeated ids are dropped (only
    ids from a field can repeat: ``FindRepeatedIds`` finds their first occurrences from the ids
    alone) and records validated (``validate``, default ``ValidateTextBatch``). Only a reader's work
    is serial; a file's batches are scored in parallel, and no record crosses a shuffle on its own.
    """
    read = p | "Read" >> source.batched(batch_size)
    ids = read.records | "ValidateIds" >> beam.ParDo(CheckBatchIds()).with_output_types(
        RecordBatch
    ).with_outputs(DEAD_LETTER, main="valid")
    batches = ids.valid | "SpreadBatches" >> beam.Reshuffle()
    dead = [read.dead_letter, ids[DEAD_LETTER]]
    if fields.id_field:
        repeated = ids.valid | "FindRepeatedIds" >> FindRepeatedIds()
        unique = batches | "DropRepeats" >> beam.ParDo(
            DropRepeats(), beam.pvalue.AsDict(repeated)
        ).with_output_types(RecordBatch).with_outputs(DUPLICATES, main="unique")
        batches = unique.unique
        dead.append(unique[DUPLICATES])
    checked = batches | "Validate" >> beam.ParDo(validate or ValidateTextBatch()).with_output_types(
        RecordBatch
    ).with_outputs(DEAD_LETTER, main="valid")
    dead.append(checked[DEAD_LETTER])
    return ValidRecords(checked.valid, dead)
