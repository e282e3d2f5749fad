"""``normxlogit annotate``: the composition of the annotation pipeline.

inputs -> ReadRecords -> [DropDuplicateIds] -> ValidateText (pipeline/stages.py)
       -> RunInference(NormXLogitModelHandler) -> Arrow record batches
       -> attributions/part-*.parquet
every dead letter (read, duplicate, validation, model) -> errors/part-*.jsonl
scored docs -> per-group CombineFn -> summaries/groups.jsonl (transforms/summaries.py)
counts + finalised file names -> manifest.json (last)
"""

from __future__ import annotations

from dataclasses import dataclass

import apache_beam as beam
from apache_beam.ml.inference.base import RunInference
from apache_beam.options.pipeline_options import PipelineOptions

from normxlogit.api import validate_layers
from normxlogit.pipeline.stages import (
    Preflight,
    count_as,
    package_versions,
    preflight,
    read_valid_records,
    run_to_manifest,
    sum_as,
    with_absolute_paths,
    write_manifest_last,
)
from normxlogit.transforms.model_handler import ModelSpec, NormXLogitModelHandler, ScoringOptions
from normxlogit.transforms.sources import FieldSpec, ReadRecords
from normxlogit.transforms.summaries import WriteSummaries
from normxlogit.transforms.validate import DEAD_LETTER
from normxlogit.transforms.writers import SplitScored, WriteAttributions, WriteDeadLetters


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


def describe_run(cfg: AnnotateConfig, pre: Preflight) -> dict:
    """The manifest's body, less what only the finished run knows (counts, files, end time)."""
    s = cfg.scoring
    if s.target is None and cfg.fields.target_field is None:
        mode = "prediction"
    else:
        mode = "field" if cfg.fields.target_field else "fixed"
    return {
        **pre.manifest_header("annotate", cfg),
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
        "versions": package_versions(),
    }


def build_annotate(p: beam.Pipeline, cfg: AnnotateConfig, source: ReadRecords, manifest: dict) -> None:
    """Add the annotate pipeline to ``p``, reading the inputs ``source`` already expanded."""
    front = read_valid_records(p, source, cfg.fields)
    handler = NormXLogitModelHandler(
        cfg.spec, cfg.scoring, model_copies=cfg.model_copies, large_model=cfg.large_model
    )
    scored = front.valid | "Score" >> RunInference(handler)
    with_layers = bool(cfg.scoring.layers)
    split = scored | "Split" >> beam.ParDo(SplitScored(with_layers)).with_outputs(DEAD_LETTER, main="rows")
    dead = (*front.dead, split[DEAD_LETTER]) | "AllDead" >> beam.Flatten()
    tokens = sum_as(split.rows, "tokens", lambda b: b.num_rows)
    padded = sum_as(scored, "padded_tokens", lambda d: d.padded_length)
    counts = [
        *front.counts,
        count_as(dead, "errors"),
        count_as(split.rows, "docs_annotated"),
        tokens,
        padded,
    ]
    files = {
        "attributions": split.rows | "Attributions" >> WriteAttributions(cfg.output, with_layers),
        "errors": dead | "DeadLetters" >> WriteDeadLetters(cfg.output),
        "summaries": scored | "Summaries" >> WriteSummaries(cfg.output),
    }
    write_manifest_last(
        p, cfg.output, manifest, counts, "docs_annotated", files, extra=("tokens",), sections=batching_section
    )


def batching_section(raw: dict[str, int]) -> dict:
    """The manifest's ``batching``: positions the forward passes ran, and their ratio to real tokens."""
    tokens, padded = raw.get("tokens", 0), raw.get("padded_tokens", 0)
    return {
        "batching": {
            "padded_tokens": padded,
            "padding_ratio": round(padded / tokens, 4) if tokens else None,
        }
    }


def run_annotate(cfg: AnnotateConfig, options: PipelineOptions) -> dict:
    """Check everything that can be checked up front, then run the pipeline to completion.

    Returns:
        The manifest's counts.

    Raises:
        InputError, ModelLoadError, UnsupportedModelError, LayerError, OutputExistsError: before
        starting.
    """
    cfg = with_absolute_paths(cfg)
    pre = preflight(cfg, options, check_model=lambda info: validate_layers(info, cfg.scoring.layers))
    manifest = describe_run(cfg, pre)
    return run_to_manifest(options, cfg.output, lambda p: build_annotate(p, cfg, pre.source, manifest))
