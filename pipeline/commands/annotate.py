"""``normxlogit annotate``: score every token of a corpus and write Parquet."""

from __future__ import annotations

import argparse
from dataclasses import asdict, replace

from normxlogit.pipeline.commands.common import (
    BEAM_EPILOG,
    add_corpus_options,
    add_model_options,
    field_spec,
    line_input_bytes,
    model_spec,
)
from normxlogit.pipeline.options import pipeline_options

NAME = "annotate"


def layer_list(value: str) -> tuple[int, ...]:
    """argparse type: comma-separated layer numbers, e.g. ``6,12``."""
    try:
        return tuple(int(v) for v in value.split(",") if v.strip())
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"--layers takes comma-separated integers: {value!r}") from err


def add_parser(sub) -> argparse.ArgumentParser:
    """The ``annotate`` subcommand's parser."""
    a = sub.add_parser(
        NAME,
        help="annotate a text corpus with NormXLogit token attributions (Parquet)",
        description="Score every token of every input record with NormXLogit and write "
        "OUT/attributions/part-*.parquet (token rows), OUT/documents/part-*.parquet (document rows), "
        "OUT/errors/part-*.jsonl and OUT/manifest.json.",
        epilog=BEAM_EPILOG,
    )
    add_corpus_options(a)
    add_model_options(a)
    a.add_argument(
        "--target",
        default=None,
        help="attribute this class (name or id) or single token for every record; "
        "default: the model's own prediction",
    )
    a.add_argument(
        "--target-field", default=None, help="record field holding each record's target (e.g. a gold label)"
    )
    a.add_argument("--foil", default=None, help="contrastive foil: scores become target minus foil logits")
    a.add_argument(
        "--layers",
        type=layer_list,
        default=(),
        help="comma-separated layers (1..L) for layer-wise scores, e.g. 6,12",
    )
    a.add_argument(
        "--keep-fields",
        type=field_names,
        default=(),
        help="comma-separated record fields copied into OUT/documents/ (e.g. lang,split): strings as "
        "they are, other values as JSON text, null where a record lacks the field",
    )
    return a


def field_names(value: str) -> tuple[str, ...]:
    """argparse type: comma-separated record field names for ``--keep-fields``."""
    from normxlogit.schema import document_schema

    names = tuple(v.strip() for v in value.split(",") if v.strip())
    try:
        document_schema(names)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"--keep-fields: {err}") from err
    return names


def run(args: argparse.Namespace, beam_args: list[str]) -> int:
    """Run the annotate pipeline and print its counts."""
    from normxlogit.pipeline.annotate import AnnotateConfig, run_annotate
    from normxlogit.transforms.model_handler import ScoringOptions

    options = pipeline_options(beam_args)
    cfg = AnnotateConfig(
        inputs=tuple(args.inputs),
        output=args.output,
        spec=model_spec(args),
        scoring=ScoringOptions(
            max_length=args.max_length,
            target=args.target,
            foil=args.foil,
            layers=args.layers,
            batch_tokens=args.batch_tokens,
            docs_per_batch=args.docs_per_batch,
            targets_from_records=args.target_field is not None,
            keep_fields=args.keep_fields,
            input_bytes=line_input_bytes(args.inputs, options),
        ),
        fields=replace(field_spec(args, target_field=args.target_field), keep_fields=args.keep_fields),
        overwrite=args.overwrite,
        model_copies=args.model_copies,
        large_model=args.large_model,
    )
    counts = run_annotate(cfg, options)
    print(f"normxlogit: wrote {args.output}: " + ", ".join(f"{k}={v:,}" for k, v in asdict(counts).items()))
    return 0
