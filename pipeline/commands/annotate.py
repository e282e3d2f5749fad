"""``normxlogit annotate``: score every token of a corpus and write Parquet."""

from __future__ import annotations

import argparse
from dataclasses import asdict, replace

from normxlogit.limits import prompt_room
from normxlogit.pipeline.commands.common import (
    BEAM_EPILOG,
    add_corpus_options,
    add_model_options,
    add_system_prompt_options,
    asked_responses,
    field_spec,
    line_input_bytes,
    model_spec,
    positive_int,
    refuse_before_start,
    system_prompt_refusal,
)
from normxlogit.pipeline.options import local_threads, pipeline_options
from normxlogit.pipeline.startup_checks import RunRefused
from normxlogit.response_spec import ResponseFoil, ResponseKind, ResponseSpec

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
    a.add_argument(
        "--foil",
        default=None,
        help="contrastive foil: scores become target minus foil logits; in a response run only `top`: "
        "each step against the model's own most likely other token there",
    )
    a.add_argument(
        "--layers",
        type=layer_list,
        default=(),
        help="comma-separated layers (1..L) for layer-wise scores, e.g. 6,12",
    )
    r = a.add_argument_group(
        "LLM responses (causal LMs)",
        "Attribute a whole answer: each token's score sums its NormXLogit over the answer's tokens, from "
        "one teacher-forced forward pass. --target, --target-field and --layers do not apply; --foil takes "
        "only `top`.",
    )
    r.add_argument(
        "--response-field",
        default=None,
        metavar="FIELD",
        help="the record's text field is the prompt and FIELD its response (a string)",
    )
    r.add_argument(
        "--messages-field",
        default=None,
        metavar="FIELD",
        help="FIELD holds an OpenAI-style chat (a list of {role, content}); the last message, the "
        "assistant's, is the response; the conversation before it is rendered with the tokenizer's chat "
        "template; the text field is not read",
    )
    r.add_argument(
        "--generate",
        type=positive_int,
        default=None,
        metavar="N",
        help="the model answers each record's text itself (greedy, at most N new tokens, batched) and that "
        "answer is attributed; with --messages-field it answers each chat (without its last assistant "
        "message, if any) through the chat template",
    )
    r.add_argument(
        "--chat-template",
        action="store_true",
        help="with --generate or --response-field: the record's text goes through the tokenizer's chat "
        "template as a user message (and the response as the assistant's), as a chat model is prompted",
    )
    add_system_prompt_options(r)
    r.add_argument(
        "--step-scores",
        action="store_true",
        help="also write each token's score at every response step (a list column `step_scores`; large: "
        "prompt+response tokens x response tokens values per document)",
    )
    a.add_argument(
        "--include-template",
        action="store_true",
        help="response runs: count the tokens a chat template wrote (role markers, a default system "
        "prompt) in the corpus summaries (summaries/groups.jsonl); by default they are left out, as "
        "special tokens are",
    )
    a.add_argument(
        "--keep-fields",
        type=field_names,
        default=(),
        help="comma-separated record fields copied into OUT/documents/ (e.g. lang,split): strings as "
        "they are, other values as JSON text, null where a record lacks the field",
    )
    return a


def field_names(value: str, responses: bool = False) -> tuple[str, ...]:
    """argparse type: comma-separated record field names for ``--keep-fields`` (``responses``: also
    distinct from a response run's own document columns)."""
    from normxlogit.schema import document_schema

    names = tuple(v.strip() for v in value.split(",") if v.strip())
    try:
        document_schema(names, responses=responses)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"--keep-fields: {err}") from err
    return names


class ResponseFlagError(RunRefused):
    """Flags that do not go together in a response run (or a response flag without one)."""


def answered_chats(asked: list[ResponseSpec]) -> list[ResponseSpec]:
    """``--messages-field`` with ``--generate N`` as one spec: the model answers each chat (without
    its last assistant message) through the chat template; other lists as they are."""
    kinds = [r.kind for r in asked]
    if kinds != [ResponseKind.CHAT, ResponseKind.GENERATE]:
        return asked
    chat, generate = asked
    return [replace(generate, field=chat.field, system_prompt=chat.system_prompt)]


def response_mode(args: argparse.Namespace) -> ResponseSpec | None:
    """Which response run the flags ask for, or None.

    Raises:
        ResponseFlagError: naming the flags that clash.
    """
    asked = answered_chats(asked_responses(args))
    refusal = system_prompt_refusal(args, asked[0] if len(asked) == 1 else None)
    if refusal is not None and len(asked) <= 1:
        raise ResponseFlagError(refusal)
    if len(asked) > 1:
        raise ResponseFlagError(
            f"{' and '.join(r.kind.flag for r in asked)} cannot be combined: --response-field reads the "
            "response from a field, --messages-field from a chat, --generate has the model write it; "
            "choose one"
        )
    top = ResponseFoil.TOP.value
    if not asked and args.chat_template:
        raise ResponseFlagError(
            "--chat-template puts a response run's prompt through the chat template: add --generate N "
            "or --response-field FIELD"
        )
    if not asked:
        if args.step_scores:
            raise ResponseFlagError(
                "--step-scores needs a response run: add --response-field, --messages-field or --generate"
            )
        if args.foil == top:
            raise ResponseFlagError(
                f"--foil {top} (each step's most likely other token) needs a response run: add "
                "--response-field, --messages-field or --generate, or give a class or token as --foil"
            )
        return None
    (response,) = asked
    other = [
        flag
        for flag, value in (
            ("--target", args.target),
            ("--target-field", args.target_field),
            ("--layers", args.layers),
        )
        if value
    ]
    if other:
        raise ResponseFlagError(
            f"{', '.join(other)} cannot be used with {response.kind.flag}: a response run attributes the "
            "response's own tokens (each token's score sums the steps of the answer), with no other target "
            "or layers"
        )
    if args.foil is not None and args.foil != top:
        raise ResponseFlagError(
            f"--foil {args.foil} cannot be used with {response.kind.flag}: a response run takes only "
            f"--foil {top} (each step against the model's own most likely other token)"
        )
    if args.foil == top:
        response = replace(response, foil=ResponseFoil.TOP)
    try:
        if args.keep_fields:  # no names, nothing to check: spares importing the schema (and torch)
            field_names(",".join(args.keep_fields), responses=True)
    except argparse.ArgumentTypeError as err:
        raise ResponseFlagError(str(err)) from err
    if (
        args.generate is not None
        and args.max_length is not None
        and prompt_room(args.max_length, args.generate) < 1
    ):
        raise ResponseFlagError(
            f"--generate {args.generate} leaves no room for a prompt in --max-length {args.max_length}"
        )
    return response


def run(args: argparse.Namespace, beam_args: list[str]) -> int:
    """Run the annotate pipeline and print its counts.

    Raises:
        ResponseFlagError, ModelPathError, DefaultModelMissing, RunRefused: clashing flags and the
            refusals of ``refuse_before_start``, before torch, transformers and Beam are imported.
    """
    response = response_mode(args)
    refuse_before_start(args)

    from normxlogit.engine import EngineOptions
    from normxlogit.pipeline.annotate import AnnotateConfig, run_annotate
    from normxlogit.transforms.model_handler import ScoringOptions

    options = pipeline_options(beam_args, threads=local_threads(args.device))
    cfg = AnnotateConfig(
        inputs=tuple(args.inputs),
        output=args.output,
        spec=model_spec(args),
        scoring=ScoringOptions(
            engine=EngineOptions(
                max_length=args.max_length,
                target=args.target,
                foil=None if response is not None else args.foil,
                layers=args.layers,
                batch_tokens=args.batch_tokens,
            ),
            docs_per_batch=args.docs_per_batch,
            targets_from_records=args.target_field is not None,
            keep_fields=args.keep_fields,
            input_bytes=line_input_bytes(args.inputs, options),
            response=response,
            step_scores=args.step_scores,
        ),
        fields=replace(
            field_spec(args, target_field=args.target_field),
            keep_fields=args.keep_fields,
            response_field=args.response_field,
            messages_field=args.messages_field,
        ),
        overwrite=args.overwrite,
        model_copies=args.model_copies,
        large_model=args.large_model,
        include_template=args.include_template,
    )
    counts = run_annotate(cfg, options)
    print(f"normxlogit: wrote {args.output}: " + ", ".join(f"{k}={v:,}" for k, v in asdict(counts).items()))
    return 0
