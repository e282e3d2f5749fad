"""``normxlogit show``: one document of a finished run in the terminal, tokens coloured by score."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from normxlogit.pipeline.commands.common import positive_int

NAME = "show"


def add_parser(sub) -> argparse.ArgumentParser:
    """The ``show`` subcommand's parser."""
    s = sub.add_parser(
        NAME,
        help="print one annotated document with its tokens coloured by score",
        description="Print a document of a finished run: its prediction and target, its text with "
        "each token coloured by score (blue: against the target, red: supports it) and its top tokens.",
    )
    s.add_argument("output", metavar="OUT", help="the --output folder of a finished `normxlogit annotate`")
    s.add_argument("--doc", required=True, metavar="ID", help="the document's doc_id")
    s.add_argument("--top", type=positive_int, default=5, help="top tokens to list (default: 5)")
    s.add_argument("--no-color", action="store_true", help="plain text, no ANSI colours")
    s.add_argument(
        "--step",
        type=positive_int,
        default=None,
        metavar="T",
        help="response runs annotated with --step-scores: colour the tokens by step T's scores, the "
        "attribution of the T-th response token, and list step T's top context tokens",
    )
    s.add_argument(
        "--token",
        default=None,
        metavar="TEXT",
        help="response runs: show the step that predicts the response token TEXT, as stored "
        "(' Charles') or as show lists it (␣Charles, \\n); without an exact match, word-start "
        "markers (space, ▁, Ġ) are ignored. Needs --step-scores for the step's scores",
    )
    s.add_argument(
        "--occurrence",
        type=positive_int,
        default=None,
        metavar="N",
        help="with --token: the N-th response token that matches (default: 1, the first)",
    )
    s.add_argument(
        "--include-template",
        action="store_true",
        help="response runs: rank the tokens a chat template wrote (role markers, a default system "
        "prompt) in the top tokens too; by default they are left out (never in the colour scale)",
    )
    return s


def run(args: argparse.Namespace, beam_args: list[str]) -> int:
    """Print the document, or a one-line error naming near ids (or near tokens with ``--token``)."""
    from normxlogit.pipeline.report.terminal import (
        StepError,
        UnknownDocError,
        has_step_scores,
        read_document,
        read_document_text,
        render_document,
    )
    from normxlogit.pipeline.report.token_step import TokenError, find_response_token
    from normxlogit.transforms.layout import RunNotFoundError, read_annotate_manifest

    refusal = None
    if beam_args:
        refusal = f"unrecognized arguments: {' '.join(beam_args)}"
    elif args.token is not None and args.step is not None:
        refusal = "--token chooses the step by its response token: give --step or --token, not both"
    elif args.occurrence is not None and args.token is None:
        refusal = "--occurrence N picks one of the response tokens --token TEXT matches: add --token"
    if refusal is not None:
        print(f"normxlogit show: error: {refusal}", file=sys.stderr)
        return 2
    output = Path(args.output)
    step, note = args.step, None
    try:
        read_annotate_manifest(output)
        steps = has_step_scores(output) if args.token is not None else step is not None
        rows = read_document(output, args.doc, steps=steps)
        if args.token is not None:
            match = find_response_token(rows, args.token, args.occurrence or 1)
            if not steps:
                raise StepError(
                    f"{match.describe(args.token)}, {match.location()}; {output} has no per-step "
                    "scores: annotate with --step-scores for the step's view"
                )
            step, note = match.step, match.describe(args.token)
        text = read_document_text(output, args.doc)
        page = render_document(
            rows,
            color=not args.no_color,
            top=args.top,
            text=text,
            step=step,
            note=note,
            include_template=args.include_template,
        )
    except (RunNotFoundError, UnknownDocError, StepError, TokenError) as err:
        print(f"normxlogit show: error: {err}", file=sys.stderr)
        return 2
    print(page)
    return 0
