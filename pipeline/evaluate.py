"""``normxlogit evaluate``: the composition of the faithfulness pipeline, and its pre-flight checks.

inputs -> ReadRecords, in --docs-per-batch batches -> CheckBatchIds -> [DropRepeats] -> ValidateTextBatch
       -> RunInference(FaithfulnessModelHandler) -> DocFaithfulness per record, keyed by its id
       -> CombineGlobally(SumCurves): sums per (method, metric, k), as they are and in every
          document-bootstrap replicate -> curves.parquet, summary.json, results.md, curves.png
       -> CombineGlobally(SumScalars), read by the writer: ferret's metrics and diagnosticity
          (summary.json's "ferret" and "diagnosticity", their tables in results.md)
       -> with --rationale-field, also CombineGlobally(SumPlausibility): plausibility sums per (method,
          metric) and their replicates, a side input of the writer (summary.json's "plausibility")
every dead letter (read, validation, label, model) -> errors/part-*.jsonl
once the pipeline has ended: files counted and checked against the runner's counters
(pipeline/reconcile.py) -> manifest.json (last)

Response mode (``--response-field``, ``--messages-field``, ``--generate``): no label; the handler
measures each prompt/response pair (``normxlogit.response_evaluation``). Chat records need no text
field, so they are validated by ``ValidateResponseBatch`` instead of ``ValidateTextBatch``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import apache_beam as beam
from apache_beam.ml.inference.base import RunInference
from apache_beam.options.pipeline_options import PipelineOptions

from normxlogit.baselines import require_captum
from normxlogit.bootstrap import Resampling
from normxlogit.chat import ChatTemplateError, chat_rendering, check_chat_template
from normxlogit.evaluation import BASELINE_METHODS, EvaluationError, check_evaluable, check_methods
from normxlogit.faithfulness import PERCENTS, replacement_token
from normxlogit.loading import ModelInfo
from normxlogit.pipeline.reconcile import written_evaluation
from normxlogit.pipeline.stages import (
    Preflight,
    RunOutputs,
    package_versions,
    preflight,
    read_valid_batches,
    run_to_manifest,
    with_absolute_paths,
)
from normxlogit.response_evaluation import RESPONSE_BASELINES, RESPONSE_METHODS, ResponseEvaluationOptions
from normxlogit.response_spec import ResponseKind, ResponseSpec
from normxlogit.responses import require_causal_lm
from normxlogit.transforms.counters import DOCS_EVALUATED
from normxlogit.transforms.evaluate_handler import (
    EvaluatedDoc,
    EvaluateHandlerOptions,
    FaithfulnessModelHandler,
)
from normxlogit.transforms.evaluate_results import (
    KeyedFaithfulness,
    SumCurves,
    response_section,
    write_results,
)
from normxlogit.transforms.ferret_results import SumScalars
from normxlogit.transforms.layout import (
    EvaluateCounts,
    EvaluateOptionsSection,
    EvaluateSections,
    FaithfulnessSection,
    ResponseFaithfulnessSection,
    RunDescription,
)
from normxlogit.transforms.model_handler import ModelSpec
from normxlogit.transforms.plausibility_results import SumPlausibility
from normxlogit.transforms.sources import FieldSpec, ReadRecords
from normxlogit.transforms.validate import DEAD_LETTER
from normxlogit.transforms.validate_response import ValidateResponseBatch
from normxlogit.transforms.writers import WriteDeadLetters

EVALUATED = "evaluated"


@dataclass(frozen=True)
class EvaluateConfig:
    """Everything ``evaluate`` was asked to do (the manifest records it).

    Attributes:
        resampling: the summary's document-bootstrap intervals (replicates, seed, level).
    """

    inputs: tuple[str, ...]
    output: str
    spec: ModelSpec
    options: EvaluateHandlerOptions
    fields: FieldSpec
    overwrite: bool = False
    resampling: Resampling = field(default_factory=Resampling)


class SplitEvaluated(beam.DoFn):
    """EvaluatedDoc -> its DocFaithfulness keyed by its id, or its dead letter."""

    def process(self, doc: EvaluatedDoc):
        if doc.result is None:
            yield beam.pvalue.TaggedOutput(DEAD_LETTER, doc.error)
        else:
            yield KeyedFaithfulness(doc.record.doc_id, doc.result)


def describe_evaluation(cfg: EvaluateConfig, pre: Preflight[str]) -> RunDescription:
    """The manifest, less what only the finished run knows (counts, files, end time); the
    pre-flight's model facts are the token that replaces masked ones."""
    ev, resp, replacement = cfg.options.evaluation, cfg.options.response_evaluation, pre.model_facts
    response = cfg.options.response
    if response is not None:
        faithfulness = ResponseFaithfulnessSection(
            methods=tuple(resp.methods),
            seed=resp.seed,
            k_percents=PERCENTS,
            replacement_token=replacement,
            response_source=response.kind.source_name,
            response_field=cfg.fields.response_field,
            messages_field=cfg.fields.messages_field,
            generate=response.max_new_tokens,
            system_prompt=response.system_prompt.text,
            no_default_system_prompt=response.system_prompt.drop_default,
            random_seeds=resp.random_seeds,
            bootstrap=cfg.resampling.replicates,
            ig_steps=resp.ig_steps if "integrated_gradients" in resp.methods else None,
        )
    else:
        faithfulness = FaithfulnessSection(
            methods=tuple(ev.methods),
            seed=ev.seed,
            ig_steps=ev.ig_steps,
            k_percents=PERCENTS,
            replacement_token=replacement,
            label_field=cfg.fields.target_field,
            random_seeds=ev.random_seeds,
            bootstrap=cfg.resampling.replicates,
            loo_max_tokens=ev.loo_max_tokens,
        )
    sections = EvaluateSections(
        faithfulness=faithfulness,
        options=EvaluateOptionsSection(
            text_field=cfg.fields.text_field,
            id_field=cfg.fields.id_field,
            max_length=cfg.options.max_length,
            batch_tokens=ev.batch_tokens,
            docs_per_batch=cfg.options.docs_per_batch,
            device=cfg.spec.device,
            dtype=cfg.spec.dtype,
        ),
        versions=package_versions(),
    )
    return RunDescription(pre.manifest_header("evaluate", cfg), sections)


def build_evaluate(
    p: beam.Pipeline, cfg: EvaluateConfig, source: ReadRecords, manifest: RunDescription
) -> None:
    """Add the evaluate pipeline to ``p``, reading the inputs ``source`` already expanded."""
    response = cfg.options.response
    measured = cfg.options.evaluation if response is None else cfg.options.response_evaluation
    baselines = BASELINE_METHODS if response is None else RESPONSE_BASELINES
    # Response mode checks the prompt (or chat) and the response; chat records need no text field.
    validate = None if response is None else ValidateResponseBatch(response.kind)
    front = read_valid_batches(p, source, cfg.fields, cfg.options.docs_per_batch, validate)
    section = (
        None
        if response is None
        else response_section(response, manifest.sections.faithfulness.replacement_token)
    )
    handler = FaithfulnessModelHandler(cfg.spec, cfg.options)
    evaluated = front.valid | "Evaluate" >> RunInference(handler.with_no_batching())
    split = evaluated | "Split" >> beam.ParDo(SplitEvaluated()).with_outputs(DEAD_LETTER, main=EVALUATED)
    dead = (*front.dead, split[DEAD_LETTER]) | "AllDead" >> beam.Flatten()
    plausibility = None
    if cfg.fields.rationale_field is not None:  # the text task's plausibility (--rationale-field)
        combine = SumPlausibility(
            len(measured.methods), cfg.resampling, cfg.fields.rationale_field, measured.rationale_k
        )
        plausibility = beam.pvalue.AsSingleton(
            split[EVALUATED] | "SumPlausibility" >> beam.CombineGlobally(combine)
        )
    # ferret's metrics and diagnosticity: a combine beside SumCurves, read by WriteResults.
    loo = None if response is not None else measured.loo_max_tokens
    scalars = beam.pvalue.AsSingleton(
        split[EVALUATED]
        | "SumScalars"
        >> beam.CombineGlobally(SumScalars(len(measured.methods), cfg.resampling, loo, response is not None))
    )
    _ = (
        split[EVALUATED]
        | "SumCurves" >> beam.CombineGlobally(SumCurves(len(measured.methods), cfg.resampling))
        | "WriteResults"
        >> beam.FlatMap(
            write_results,
            cfg.output,
            measured.methods,
            baselines,
            measured.random_seeds,
            section,
            plausibility,
            scalars,
        )
    )
    _ = dead | "DeadLetters" >> WriteDeadLetters(cfg.output)


EVALUATE_OUTPUTS = RunOutputs(DOCS_EVALUATED, written_evaluation)


def check_response_methods(opts: ResponseEvaluationOptions) -> None:
    """Response-mode method names must be distinct names from ``RESPONSE_METHODS``; Integrated
    Gradients needs Captum.

    Raises:
        EvaluationError: naming the methods response mode has.
        MissingExtraError: ``integrated_gradients`` without Captum installed.
    """
    methods = opts.methods
    if not methods or len(set(methods)) != len(methods) or any(m not in RESPONSE_METHODS for m in methods):
        raise EvaluationError(
            f"--methods {','.join(methods)!r}: in response mode give distinct names from "
            f"{', '.join(RESPONSE_METHODS)}"
        )
    if "integrated_gradients" in methods:
        require_captum()


def check_response_evaluable(sm, response: ResponseSpec) -> None:
    """Run-wide problems of response mode, before the run: a model without a causal-LM head, chat
    records for a tokenizer without a chat template.

    Raises:
        UnsupportedModelError, EvaluationError.
    """
    require_causal_lm(sm.adapter, sm.info.architecture)
    if response.kind is ResponseKind.CHAT:
        try:
            check_chat_template(sm.tokenizer)
            chat_rendering(sm.tokenizer, response.system_prompt)
        except ChatTemplateError as err:
            raise EvaluationError(str(err)) from err


def run_evaluate(cfg: EvaluateConfig, options: PipelineOptions) -> EvaluateCounts:
    """Check everything that can be checked up front, then run the pipeline to completion.

    Returns:
        The manifest's counts.

    Raises:
        InputError, ModelLoadError, UnsupportedModelError, OutputExistsError, EvaluationError,
        MissingExtraError: before starting.
    """
    cfg = with_absolute_paths(cfg)
    response = cfg.options.response
    if response is None:
        check_methods(cfg.options.evaluation.methods)
    else:
        check_response_methods(cfg.options.response_evaluation)

    def check_model(info: ModelInfo) -> str:
        # The launcher loads the model once: the task must be evaluable; the token that replaces
        # masked ones comes back for the manifest.
        sm = cfg.spec.load_for_checks()
        check_evaluable(sm)
        if response is not None:
            check_response_evaluable(sm, response)
        return replacement_token(sm.tokenizer)[1]

    pre = preflight(cfg, options, check_model)
    manifest = describe_evaluation(cfg, pre)
    return run_to_manifest(
        options, pre, manifest, lambda p: build_evaluate(p, cfg, pre.source, manifest), EVALUATE_OUTPUTS
    )
