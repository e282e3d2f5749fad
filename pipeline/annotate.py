"""``normxlogit annotate``: the composition of the annotation pipeline, and its pre-flight checks.

inputs -> ReadRecords -> ValidateText -> RunInference(NormXLogitModelHandler)
       -> Arrow record batches -> attributions/part-*.parquet
every dead letter (read, validation, model) -> errors/part-*.jsonl
scored docs -> per-group CombineFn -> summaries/groups.jsonl (transforms/summaries.py)
counts + finalised file names -> manifest.json (last)
"""

from __future__ import annotations

import datetime
import os
import platform
import shutil
from dataclasses import asdict, dataclass, replace
from importlib import metadata

import apache_beam as beam
from apache_beam.io.filesystem import BeamIOError
from apache_beam.io.filesystems import FileSystems
from apache_beam.io.localfilesystem import LocalFileSystem
from apache_beam.ml.inference.base import RunInference
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from normxlogit.api import validate_layers
from normxlogit.loading import ModelInfo, inspect_model, resolve_device
from normxlogit.transforms.dedupe import DUPLICATES, DropDuplicateIds
from normxlogit.transforms.model_handler import ModelSpec, NormXLogitModelHandler, ScoringOptions
from normxlogit.transforms.sources import FieldSpec, ReadRecords
from normxlogit.transforms.summaries import SUMMARIES_DIR, WriteSummaries
from normxlogit.transforms.validate import DEAD_LETTER, SKIPPED_EMPTY, ValidateText
from normxlogit.transforms.writers import (
    ATTRIBUTIONS_DIR,
    ERRORS_DIR,
    MANIFEST,
    SplitScored,
    WriteAttributions,
    WriteDeadLetters,
    join,
    write_manifest,
)

_VERSIONED = ("normxlogit", "torch", "transformers", "apache-beam", "pyarrow", "numpy", "tokenizers")


class OutputExistsError(RuntimeError):
    """The output folder holds a finished run and --overwrite was not given."""


@dataclass(frozen=True)
class AnnotateConfig:
    """Everything ``annotate`` was asked to do (the manifest records it)."""

    inputs: tuple[str, ...]
    output: str
    spec: ModelSpec
    scoring: ScoringOptions
    fields: FieldSpec
    overwrite: bool = False
    model_copies: int | None = None
    large_model: bool = False


def _absolute(path: str) -> str:
    return os.path.abspath(path) if FileSystems.get_scheme(path) is None else path


def with_absolute_paths(cfg: AnnotateConfig) -> AnnotateConfig:
    """``cfg`` with its local input, output and model paths made absolute.

    Workers of a portable runner (a worker pool, Flink, Spark) do not run in the launcher's
    working directory, so a relative path would name another file there, or none. URLs and
    object-store paths are left as they are.
    """
    spec = cfg.spec if cfg.spec.path is None else replace(cfg.spec, path=_absolute(cfg.spec.path))
    inputs = tuple(_absolute(p) for p in cfg.inputs)
    return replace(cfg, inputs=inputs, output=_absolute(cfg.output), spec=spec)


def prepare_output(output: str, overwrite: bool) -> None:
    """Refuse a finished run unless ``overwrite``; clear what an earlier run left behind.

    A run that died leaves no manifest; its leftovers (finalised or temporary part files) are
    removed so that they cannot mix with the new run's files.
    """
    manifest = join(output, MANIFEST)
    if FileSystems.exists(manifest):
        if not overwrite:
            raise OutputExistsError(
                f"{output} already holds a finished run ({MANIFEST}); pass --overwrite to replace "
                "it, or choose another --output"
            )
        FileSystems.delete([manifest])
    remove_parts(output)


def remove_parts(output: str) -> None:
    """Delete the part-file folders (finalised and Beam temporary files) under ``output``.

    A trailing slash makes object stores (gs://, s3://) delete the whole prefix.
    """
    for folder in (join(output, ATTRIBUTIONS_DIR), join(output, ERRORS_DIR), join(output, SUMMARIES_DIR)):
        if isinstance(FileSystems.get_filesystem(folder), LocalFileSystem):
            shutil.rmtree(folder, ignore_errors=True)  # local delete of "dir/" skips subfolders
            continue
        try:
            FileSystems.delete([folder + "/"])
        except BeamIOError:
            pass  # nothing there


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in _VERSIONED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def describe_run(cfg: AnnotateConfig, info: ModelInfo, files: list[str], runner: str) -> dict:
    """The manifest's body, less what only the finished run knows (counts, files, end time)."""
    s = cfg.scoring
    if s.target is None and cfg.fields.target_field is None:
        mode = "prediction"
    else:
        mode = "field" if cfg.fields.target_field else "fixed"
    return {
        "command": "annotate",
        "start_time": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        "inputs": list(cfg.inputs),
        "input_files": len(files),
        "output": cfg.output,
        "runner": runner,
        "model": {**asdict(info), "labels": {str(k): v for k, v in info.labels.items()}},
        "target": {
            "mode": mode,
            "target": s.target,
            "target_field": cfg.fields.target_field,
            "foil": s.foil,
            "contrastive": s.foil is not None,
        },
        "options": {
            "text_field": cfg.fields.text_field,
            "id_field": cfg.fields.id_field,
            "max_length": s.max_length,
            "batch_tokens": s.batch_tokens,
            "docs_per_batch": s.docs_per_batch,
            "layers": list(s.layers),
            "device": cfg.spec.device,
            "dtype": cfg.spec.dtype,
            "padding_side": cfg.spec.padding_side,
            "model_copies": cfg.model_copies,
            "large_model": cfg.large_model,
        },
        "versions": _versions(),
    }


def reconcile(raw: dict[str, int]) -> dict[str, int]:
    """The manifest's counts; records_read = docs_annotated + skipped_empty + errors."""
    return {
        "records_read": raw.get("records_ok", 0) + raw.get("read_errors", 0),
        "docs_annotated": raw.get("docs_annotated", 0),
        "skipped_empty": raw.get("skipped_empty", 0),
        "errors": raw.get("errors", 0),
        "tokens": raw.get("tokens", 0),
    }


def _relative(output: str):
    root = join(output, "")

    def strip(path: str) -> str:
        return path[len(root) :] if path.startswith(root) else path

    return strip


def _count(pcoll, name: str):
    return (
        pcoll
        | f"Count_{name}" >> beam.combiners.Count.Globally()
        | f"Key_{name}" >> beam.Map(lambda n, k=name: (k, n))
    )


def build_annotate(p: beam.Pipeline, cfg: AnnotateConfig, source: ReadRecords, manifest: dict) -> None:
    """Add the annotate pipeline to ``p``, reading the inputs ``source`` already expanded."""
    read = p | "Read" >> source
    records, early_dead = read.records, [read.dead_letter]
    if cfg.fields.id_field:  # only ids from a field can repeat
        unique = records | "DropDuplicateIds" >> DropDuplicateIds()
        records = unique.unique
        early_dead.append(unique[DUPLICATES])
    checked = records | "Validate" >> beam.ParDo(ValidateText()).with_outputs(
        SKIPPED_EMPTY, DEAD_LETTER, main="valid"
    )
    handler = NormXLogitModelHandler(
        cfg.spec, cfg.scoring, model_copies=cfg.model_copies, large_model=cfg.large_model
    )
    scored = checked.valid | "Score" >> RunInference(handler)
    split = scored | "Split" >> beam.ParDo(SplitScored(bool(cfg.scoring.layers))).with_outputs(
        DEAD_LETTER, main="rows"
    )
    dead = (*early_dead, checked[DEAD_LETTER], split[DEAD_LETTER]) | "AllDead" >> beam.Flatten()

    parquet_files = split.rows | "Attributions" >> WriteAttributions(cfg.output, bool(cfg.scoring.layers))
    error_files = dead | "DeadLetters" >> WriteDeadLetters(cfg.output)
    # Corpus summaries: an additive branch from the scored docs (transforms/summaries.py).
    summary_files = scored | "Summaries" >> WriteSummaries(cfg.output)
    tokens = (
        split.rows
        | "Rows" >> beam.Map(lambda b: b.num_rows)
        | "SumTokens" >> beam.CombineGlobally(sum)
        | "KeyTokens" >> beam.Map(lambda n: ("tokens", n))
    )
    raw_counts = (
        _count(read.records, "records_ok"),
        _count(read.dead_letter, "read_errors"),
        _count(checked[SKIPPED_EMPTY], "skipped_empty"),
        _count(dead, "errors"),
        _count(split.rows, "docs_annotated"),
        tokens,
    ) | "AllCounts" >> beam.Flatten()
    strip = _relative(cfg.output)
    (
        p
        | "ManifestTrigger" >> beam.Create([None])
        | "Manifest"
        >> beam.Map(
            lambda _, raw, pq, err, summ: write_manifest(
                _,
                cfg.output,
                manifest,
                reconcile(dict(raw)),
                {
                    "attributions": [strip(f) for f in pq],
                    "errors": [strip(f) for f in err],
                    "summaries": [strip(f) for f in summ],
                },
            ),
            raw=beam.pvalue.AsList(raw_counts),
            pq=beam.pvalue.AsList(parquet_files),
            err=beam.pvalue.AsList(error_files),
            summ=beam.pvalue.AsList(summary_files),
        )
    )


def run_annotate(cfg: AnnotateConfig, options: PipelineOptions) -> dict:
    """Check everything that can be checked up front, then run the pipeline to completion.

    Returns:
        The manifest's counts.

    Raises:
        InputError, ModelLoadError, UnsupportedModelError, OutputExistsError: before starting.
    """
    import json

    cfg = with_absolute_paths(cfg)
    FileSystems.set_options(options)  # s3:// and gs:// listing needs the pipeline options
    source = ReadRecords(list(cfg.inputs), cfg.fields)  # expands inputs: fails fast
    info = inspect_model(
        cfg.spec.path,
        dtype=cfg.spec.dtype,
        trust_remote_code=cfg.spec.trust_remote_code,
        allow_pickle=cfg.spec.allow_pickle,
    )
    validate_layers(info, cfg.scoring.layers)
    runner = options.view_as(StandardOptions).runner or "DirectRunner"
    if str(runner) in ("DirectRunner", "BundleBasedDirectRunner"):
        resolve_device(cfg.spec.device)  # local workers share this machine's devices
    prepare_output(cfg.output, cfg.overwrite)
    manifest = describe_run(cfg, info, source.paths, str(runner))
    try:
        with beam.Pipeline(options=options) as p:
            build_annotate(p, cfg, source, manifest)
    except BaseException:
        remove_parts(cfg.output)  # a failed run leaves no partial results behind
        raise
    with FileSystems.open(join(cfg.output, MANIFEST)) as fh:
        return json.loads(fh.read())["counts"]
