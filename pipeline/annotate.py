"""``normxlogit annotate``: the composition of the annotation pipeline.

inputs -> ReadRecords in batches of --docs-per-batch -> check ids -> packed batches spread over
          workers and threads (Reshuffle) -> [DropRepeats] -> ValidateTextBatch (pipeline/stages.py)
       -> RunInference(NormXLogitModelHandler): one AnnotatedBatch (Arrow token rows, document
          rows, dead letters) per batch -> attributions/ and documents/part-*.parquet
every dead letter (read, duplicate, validation, model) -> errors/part-*.jsonl
scored batches -> summary statistics, combined -> summaries/groups.jsonl (transforms/summaries.py)
once the pipeline has ended: files counted and checked against the runner's counters
          (pipeline/reconcile.py) -> manifest.json (last)
"""

from __future__ import annotations

from dataclasses import dataclass
from operator import attrgetter

import apache_beam as beam
from apache_beam.ml.inference.base import RunInference
from apache_beam.options.pipeline_options import PipelineOptions

from normxlogit.api import validate_layers
from normxlogit.chat import chat_rendering, check_chat_template
from normxlogit.heads import UnsupportedModelError, list_supported
from normxlogit.limits import length_limit, prompt_room
from normxlogit.loading import ModelInfo
from normxlogit.pipeline.reconcile import written_annotation
from normxlogit.pipeline.stages import (
    Preflight,
    RunOutputs,
    package_versions,
    preflight,
    read_valid_batches,
    run_to_manifest,
    with_absolute_paths,
)
from normxlogit.response_spec import ResponseKind
from normxlogit.targets import TargetError, check_run_targets
from normxlogit.transforms.counters import DOCS_ANNOTATED, PADDED_TOKENS, RunnerCounts
from normxlogit.transforms.layout import (
    ATTRIBUTIONS,
    DOCUMENTS,
    AnnotateCounts,
    AnnotateOptionsSection,
    AnnotateSections,
    Batching,
    RunDescription,
    TargetSection,
)
from normxlogit.transforms.model_handler import ModelSpec, NormXLogitModelHandler, ScoringOptions
from normxlogit.transforms.sources import FieldSpec, ReadRecords
from normxlogit.transforms.summaries import WriteSummaries
from normxlogit.transforms.validate import ValidateTextBatch
from normxlogit.transforms.writers import WriteBatchParquet, WriteDeadLetters


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
    include_template: bool = False


def describe_run(cfg: AnnotateConfig, pre: Preflight) -> RunDescription:
    """The manifest, less what only the finished run knows (counts, files, batching, end time)."""
    s, engine, response = cfg.scoring, cfg.scoring.engine, cfg.scoring.response
    if response is not None:
        mode = response.kind.value
    elif engine.target is None and cfg.fields.target_field is None:
        mode = "prediction"
    else:
        mode = "field" if cfg.fields.target_field else "fixed"
    sections = AnnotateSections(
        target=TargetSection(
            mode=mode,
            target=engine.target,
            target_field=cfg.fields.target_field,
            foil=engine.foil if response is None or response.foil is None else response.foil.value,
            response_field=cfg.fields.response_field,
            messages_field=cfg.fields.messages_field,
            max_new_tokens=None if response is None else response.max_new_tokens,
            step_scores=s.step_scores,
            chat_template=response is not None and response.chat_template,
            **_system_prompt_fields(cfg),
        ),
        options=AnnotateOptionsSection(
            text_field=cfg.fields.text_field,
            id_field=cfg.fields.id_field,
            max_length=engine.max_length,
            batch_tokens=engine.batch_tokens,
            docs_per_batch=s.docs_per_batch,
            layers=tuple(engine.layers),
            keep_fields=tuple(s.keep_fields),
            device=cfg.spec.device,
            dtype=cfg.spec.dtype,
            padding_side=cfg.spec.padding_side,
            model_copies=cfg.model_copies,
            large_model=cfg.large_model,
            include_template=cfg.include_template,
        ),
        versions=package_versions(),
    )
    return RunDescription(pre.manifest_header("annotate", cfg), sections)


def _system_prompt_fields(cfg: AnnotateConfig) -> dict:
    """The manifest's record of a chat run's system message: the flags and the template variable
    ``--no-default-system-prompt`` set (None where none was needed)."""
    response = cfg.scoring.response
    if response is None or not response.through_template:
        return {}
    choice = response.system_prompt
    variables = chat_rendering(cfg.spec.skeleton().tokenizer, choice).variables if choice.drop_default else ()
    return {
        "system_prompt": choice.text,
        "no_default_system_prompt": choice.drop_default,
        "system_prompt_variable": ", ".join(name for name, _ in variables) or None,
    }


def build_annotate(p: beam.Pipeline, cfg: AnnotateConfig, source: ReadRecords) -> None:
    """Add the annotate pipeline to ``p``, reading the inputs ``source`` already expanded.

    Its steps count records as they pass (``transforms/counters.py``); the launcher writes the
    manifest once the files hold what they counted (``pipeline/reconcile.py``)."""
    response = cfg.scoring.response
    validate = ValidateTextBatch(chat=response is not None and response.reads_messages)
    front = read_valid_batches(p, source, cfg.fields, cfg.scoring.docs_per_batch, validate)
    handler = NormXLogitModelHandler(
        cfg.spec, cfg.scoring, model_copies=cfg.model_copies, large_model=cfg.large_model
    )
    annotated = front.valid | "Score" >> RunInference(handler.with_no_batching())
    dead = (
        *front.dead,
        annotated | "ModelDead" >> beam.FlatMap(lambda b: b.dead),
    ) | "AllDead" >> beam.Flatten()
    task = cfg.scoring.task()
    tokens, documents = task.token_schema(), task.document_schema(cfg.scoring.keep_fields)
    rows, docs = attrgetter("rows"), attrgetter("documents")
    _ = annotated | "Attributions" >> WriteBatchParquet(cfg.output, ATTRIBUTIONS, tokens, rows)
    _ = annotated | "Documents" >> WriteBatchParquet(cfg.output, DOCUMENTS, documents, docs)
    _ = dead | "DeadLetters" >> WriteDeadLetters(cfg.output)
    _ = annotated | "Summaries" >> WriteSummaries(cfg.output, include_template=cfg.include_template)


def batching(counts: AnnotateCounts, counted: RunnerCounts) -> Batching:
    """The manifest's ``batching``: positions the forward passes ran, and their ratio to real tokens."""
    return Batching.of(counts.tokens, counted[PADDED_TOKENS])


ANNOTATE_OUTPUTS = RunOutputs(DOCS_ANNOTATED, written_annotation, batching)


def check_scoring(cfg: AnnotateConfig, info: ModelInfo) -> None:
    """What the scoring options ask of the model, checked before a run: layers, target and foil, and
    for a response run a causal LM (with a chat template for chats) and room for the answers.

    A run-wide ``--target``/``--foil`` the model cannot have would dead-letter every record; it is
    resolved here against the model's config and tokenizer (no weights loaded).

    Raises:
        LayerError, TargetError, UnsupportedModelError, ChatTemplateError, ResponseOptionError.
    """
    s, engine = cfg.scoring, cfg.scoring.engine
    validate_layers(info, engine.layers)
    if s.response is not None:
        check_response_run(cfg, info)
    if engine.target is not None or engine.foil is not None:
        check_run_targets(cfg.spec.skeleton(), engine.target, engine.foil)


class ResponseOptionError(TargetError):
    """A response run's options do not fit the model (no room for the answers it is to generate):
    a run-wide target problem, caught before the run."""


def check_response_run(cfg: AnnotateConfig, info: ModelInfo) -> None:
    """A response run needs a causal LM, a chat template for chats, and room for generated answers.

    Raises:
        UnsupportedModelError: the model is not a causal LM (message names its task and the
            supported causal-LM families).
        ChatTemplateError: ``--messages-field`` or ``--chat-template`` with a tokenizer that has no
            chat template, or a
            system-prompt choice the template cannot follow (``chat.chat_rendering``).
        ResponseOptionError: ``--generate N`` leaves no room for a prompt within the length limit.
    """
    s, spec, response = cfg.scoring, cfg.spec, cfg.scoring.response
    if info.task != "causal_lm":
        families = ", ".join(name for name in list_supported() if name.endswith("/causal_lm"))
        raise UnsupportedModelError(
            f"{response.kind.flag} needs a causal language model; {info.architecture} is a "
            f"{info.task} model. Use a model with a causal-LM head: {families}."
        )
    skeleton = spec.skeleton()
    if response.through_template:
        check_chat_template(skeleton.tokenizer)
        chat_rendering(skeleton.tokenizer, response.system_prompt)
    limit = length_limit(s.engine.max_length, skeleton.max_length)
    if response.kind is ResponseKind.GENERATE and prompt_room(limit, response.max_new_tokens) < 1:
        raise ResponseOptionError(
            f"--generate {response.max_new_tokens} leaves no room for a prompt in {limit} tokens "
            "(--max-length or the model's limit); generate fewer tokens"
        )


def run_annotate(cfg: AnnotateConfig, options: PipelineOptions) -> dict:
    """Check everything that can be checked up front, then run the pipeline to completion.

    Returns:
        The manifest's counts.

    Raises:
        InputError, ModelLoadError, UnsupportedModelError, LayerError, TargetError,
        ChatTemplateError, ResponseOptionError, OutputExistsError: before starting.
    """
    cfg = with_absolute_paths(cfg)
    pre = preflight(cfg, options, check_model=lambda info: check_scoring(cfg, info))
    return run_to_manifest(
        options, pre, describe_run(cfg, pre), lambda p: build_annotate(p, cfg, pre.source), ANNOTATE_OUTPUTS
    )
