"""``normxlogit evaluate``: the composition of the faithfulness pipeline, and its pre-flight checks.

inputs -> ReadRecords -> [DropDuplicateIds] -> ValidateText
       -> RunInference(FaithfulnessModelHandler) -> DocFaithfulness per record
       -> CombineGlobally(SumCurves) -> curves.parquet, summary.json, results.md, curves.png
every dead letter (read, validation, label, model) -> errors/part-*.jsonl
counts + written files -> manifest.json (last)
"""

from __future__ import annotations

from dataclasses import dataclass

import apache_beam as beam
from apache_beam.ml.inference.base import RunInference
from apache_beam.options.pipeline_options import PipelineOptions

from normxlogit.evaluation import check_evaluable, check_methods
from normxlogit.faithfulness import PERCENTS, replacement_token
from normxlogit.loading import ModelInfo, load_model
from normxlogit.pipeline.stages import (
    Preflight,
    count_as,
    package_versions,
    preflight,
    read_valid_records,
    run_to_manifest,
    with_absolute_paths,
    write_manifest_last,
)
from normxlogit.transforms.evaluate_handler import (
    EvaluatedDoc,
    EvaluateHandlerOptions,
    FaithfulnessModelHandler,
)
from normxlogit.transforms.evaluate_results import SumCurves, write_results
from normxlogit.transforms.layout import EvaluateCounts, RunDescription
from normxlogit.transforms.model_handler import ModelSpec
from normxlogit.transforms.sources import FieldSpec, ReadRecords
from normxlogit.transforms.validate import DEAD_LETTER
from normxlogit.transforms.writers import WriteDeadLetters

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


def describe_evaluation(cfg: EvaluateConfig, pre: Preflight, replacement: str) -> RunDescription:
    """The manifest, less what only the finished run knows (counts, files, end time)."""
    ev = cfg.options.evaluation
    sections = {
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
        "versions": package_versions(),
    }
    return RunDescription(pre.manifest_header("evaluate", cfg), sections)


def build_evaluate(
    p: beam.Pipeline, cfg: EvaluateConfig, source: ReadRecords, manifest: RunDescription
) -> None:
    """Add the evaluate pipeline to ``p``, reading the inputs ``source`` already expanded."""
    methods = cfg.options.evaluation.methods
    front = read_valid_records(p, source, cfg.fields)
    evaluated = front.valid | "Evaluate" >> RunInference(FaithfulnessModelHandler(cfg.spec, cfg.options))
    split = evaluated | "Split" >> beam.ParDo(SplitEvaluated()).with_outputs(DEAD_LETTER, main=EVALUATED)
    dead = (*front.dead, split[DEAD_LETTER]) | "AllDead" >> beam.Flatten()
    results = (
        split[EVALUATED]
        | "SumCurves" >> beam.CombineGlobally(SumCurves(len(methods)))
        | "WriteResults" >> beam.FlatMap(write_results, cfg.output, methods)
    )
    done = EvaluateCounts.DONE
    counts = [*front.counts, count_as(dead, "errors"), count_as(split[EVALUATED], done)]
    files = {"results": results, "errors": dead | "DeadLetters" >> WriteDeadLetters(cfg.output)}
    write_manifest_last(p, cfg.output, manifest, counts, done, files)


def run_evaluate(cfg: EvaluateConfig, options: PipelineOptions) -> EvaluateCounts:
    """Check everything that can be checked up front, then run the pipeline to completion.

    Returns:
        The manifest's counts.

    Raises:
        InputError, ModelLoadError, UnsupportedModelError, OutputExistsError, EvaluationError,
        MissingExtraError: before starting.
    """
    cfg = with_absolute_paths(cfg)
    check_methods(cfg.options.evaluation.methods)
    replacement = []

    def check_model(info: ModelInfo) -> None:
        # The launcher loads the model once: the task must be evaluable, and the manifest says
        # which token replaces masked ones.
        sm = load_model(
            cfg.spec.path,
            dtype=cfg.spec.dtype,
            trust_remote_code=cfg.spec.trust_remote_code,
            allow_pickle=cfg.spec.allow_pickle,
            hash_weights=False,
        )
        check_evaluable(sm)
        replacement.append(replacement_token(sm.tokenizer)[1])

    pre = preflight(cfg, options, check_model)
    manifest = describe_evaluation(cfg, pre, replacement[0])
    return run_to_manifest(options, cfg.output, lambda p: build_evaluate(p, cfg, pre.source, manifest))
