"""``normxlogit evaluate``: the composition of the faithfulness pipeline, and its pre-flight checks.

inputs -> ReadRecords -> [DropDuplicateIds] -> ValidateText
       -> RunInference(FaithfulnessModelHandler) -> DocFaithfulness per record
       -> CombineGlobally(SumCurves) -> curves.parquet, summary.json, results.md, curves.png
every dead letter (read, validation, label, model) -> errors/part-*.jsonl
counts + written files -> manifest.json (last)
"""

from __future__ import annotations

import datetime
import json
from dataclasses import asdict, dataclass

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.ml.inference.base import RunInference
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from normxlogit.evaluation import check_evaluable, check_methods
from normxlogit.faithfulness import PERCENTS, replacement_token
from normxlogit.loading import ModelInfo, inspect_model, load_model, resolve_device
from normxlogit.pipeline.annotate import _versions, prepare_output, remove_parts, with_absolute_paths
from normxlogit.transforms.dedupe import DUPLICATES, DropDuplicateIds
from normxlogit.transforms.evaluate_handler import (
    EvaluatedDoc,
    EvaluateHandlerOptions,
    FaithfulnessModelHandler,
)
from normxlogit.transforms.evaluate_results import SumCurves, write_results
from normxlogit.transforms.model_handler import ModelSpec
from normxlogit.transforms.sources import FieldSpec, ReadRecords
from normxlogit.transforms.validate import DEAD_LETTER, SKIPPED_EMPTY, ValidateText
from normxlogit.transforms.writers import ERRORS_DIR, MANIFEST, WriteDeadLetters, join, write_manifest

EVALUATED = "evaluated"


@dataclass(frozen=True)
class EvaluateConfig:
    """Everything ``evaluate`` was asked to do (the manifest records it)."""

    inputs: tuple[str, ...]
    output: str
    spec: ModelSpec
    options: EvaluateHandlerOptions
    fields: FieldSpec
    overwrite: bool = False


class SplitEvaluated(beam.DoFn):
    """EvaluatedDoc -> its DocFaithfulness, or its dead letter."""

    def process(self, doc: EvaluatedDoc):
        if doc.result is None:
            yield beam.pvalue.TaggedOutput(DEAD_LETTER, doc.error)
        else:
            yield doc.result


def describe_evaluation(
    cfg: EvaluateConfig, info: ModelInfo, replacement: str, files: list[str], runner: str
):
    """The manifest's body, less what only the finished run knows (counts, files, end time)."""
    ev = cfg.options.evaluation
    return {
        "command": "evaluate",
        "start_time": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        "inputs": list(cfg.inputs),
        "input_files": len(files),
        "output": cfg.output,
        "runner": runner,
        "model": {**asdict(info), "labels": {str(k): v for k, v in info.labels.items()}},
        "faithfulness": {
            "methods": list(ev.methods),
            "seed": ev.seed,
            "ig_steps": ev.ig_steps,
            "k_percents": list(PERCENTS),
            "replacement_token": replacement,
            "target": "prediction",
            "label_field": cfg.fields.target_field,
        },
        "options": {
            "text_field": cfg.fields.text_field,
            "id_field": cfg.fields.id_field,
            "max_length": cfg.options.max_length,
            "batch_tokens": ev.batch_tokens,
            "docs_per_batch": cfg.options.docs_per_batch,
            "device": cfg.spec.device,
            "dtype": cfg.spec.dtype,
        },
        "versions": _versions(),
    }


def reconcile_evaluation(raw: dict[str, int]) -> dict[str, int]:
    """The manifest's counts; records_read = docs_evaluated + skipped_empty + errors."""
    return {
        "records_read": raw.get("records_ok", 0) + raw.get("read_errors", 0),
        "docs_evaluated": raw.get("docs_evaluated", 0),
        "skipped_empty": raw.get("skipped_empty", 0),
        "errors": raw.get("errors", 0),
    }


def _count(pcoll, name: str):
    return (
        pcoll
        | f"Count_{name}" >> beam.combiners.Count.Globally()
        | f"Key_{name}" >> beam.Map(lambda n, k=name: (k, n))
    )


def build_evaluate(p: beam.Pipeline, cfg: EvaluateConfig, source: ReadRecords, manifest: dict) -> None:
    """Add the evaluate pipeline to ``p``, reading the inputs ``source`` already expanded."""
    methods = cfg.options.evaluation.methods
    read = p | "Read" >> source
    records, early_dead = read.records, [read.dead_letter]
    if cfg.fields.id_field:
        unique = records | "DropDuplicateIds" >> DropDuplicateIds()
        records = unique.unique
        early_dead.append(unique[DUPLICATES])
    checked = records | "Validate" >> beam.ParDo(ValidateText()).with_outputs(
        SKIPPED_EMPTY, DEAD_LETTER, main="valid"
    )
    evaluated = checked.valid | "Evaluate" >> RunInference(FaithfulnessModelHandler(cfg.spec, cfg.options))
    split = evaluated | "Split" >> beam.ParDo(SplitEvaluated()).with_outputs(DEAD_LETTER, main=EVALUATED)
    dead = (*early_dead, checked[DEAD_LETTER], split[DEAD_LETTER]) | "AllDead" >> beam.Flatten()
    error_files = dead | "DeadLetters" >> WriteDeadLetters(cfg.output)
    result_files = (
        split[EVALUATED]
        | "SumCurves" >> beam.CombineGlobally(SumCurves(len(methods)))
        | "WriteResults" >> beam.FlatMap(write_results, cfg.output, methods)
    )
    raw_counts = (
        _count(read.records, "records_ok"),
        _count(read.dead_letter, "read_errors"),
        _count(checked[SKIPPED_EMPTY], "skipped_empty"),
        _count(dead, "errors"),
        _count(split[EVALUATED], "docs_evaluated"),
    ) | "AllCounts" >> beam.Flatten()
    root = join(cfg.output, "")
    (
        p
        | "ManifestTrigger" >> beam.Create([None])
        | "Manifest"
        >> beam.Map(
            lambda _, raw, res, err: write_manifest(
                _,
                cfg.output,
                manifest,
                reconcile_evaluation(dict(raw)),
                {"results": list(res), ERRORS_DIR: [f.removeprefix(root) for f in err]},
            ),
            raw=beam.pvalue.AsList(raw_counts),
            res=beam.pvalue.AsList(result_files),
            err=beam.pvalue.AsList(error_files),
        )
    )


def run_evaluate(cfg: EvaluateConfig, options: PipelineOptions) -> dict:
    """Check everything that can be checked up front, then run the pipeline to completion.

    Returns:
        The manifest's counts.

    Raises:
        InputError, ModelLoadError, UnsupportedModelError, OutputExistsError, EvaluationError,
        MissingExtraError: before starting.
    """
    cfg = with_absolute_paths(cfg)
    check_methods(cfg.options.evaluation.methods)
    FileSystems.set_options(options)
    source = ReadRecords(list(cfg.inputs), cfg.fields)  # expands inputs: fails fast
    info = inspect_model(
        cfg.spec.path,
        dtype=cfg.spec.dtype,
        trust_remote_code=cfg.spec.trust_remote_code,
        allow_pickle=cfg.spec.allow_pickle,
    )
    sm = load_model(
        cfg.spec.path,
        dtype=cfg.spec.dtype,
        trust_remote_code=cfg.spec.trust_remote_code,
        allow_pickle=cfg.spec.allow_pickle,
        hash_weights=False,
    )
    check_evaluable(sm)
    _, replacement = replacement_token(sm.tokenizer)
    del sm
    runner = options.view_as(StandardOptions).runner or "DirectRunner"
    if str(runner) in ("DirectRunner", "BundleBasedDirectRunner"):
        resolve_device(cfg.spec.device)
    prepare_output(cfg.output, cfg.overwrite)
    manifest = describe_evaluation(cfg, info, replacement, source.paths, str(runner))
    try:
        with beam.Pipeline(options=options) as p:
            build_evaluate(p, cfg, source, manifest)
    except BaseException:
        remove_parts(cfg.output)
        raise
    with FileSystems.open(join(cfg.output, MANIFEST)) as fh:
        return json.loads(fh.read())["counts"]
