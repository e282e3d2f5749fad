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
        "attribution of the T-th response token",
    )
    return s


def run(args: argparse.Namespace, beam_args: list[str]) -> int:
    """Print the document, or a one-line error naming near ids."""
    from normxlogit.pipeline.report.terminal import (
        StepError,
        UnknownDocError,
        read_document,
        read_document_text,
        render_document,
    )
    from normxlogit.transforms.layout import RunNotFoundError, read_annotate_manifest

    if beam_args:
        print(f"normxlogit show: error: unrecognized arguments: {' '.join(beam_args)}", file=sys.stderr)
        return 2
    output = Path(args.output)
    try:
        read_annotate_manifest(output)
        rows = read_document(output, args.doc, steps=args.step is not None)
        text = read_document_text(output, args.doc)
        page = render_document(rows, color=not args.no_color, top=args.top, text=text, step=args.step)
    except (RunNotFoundError, UnknownDocError, StepError) as err:
        print(f"normxlogit show: error: {err}", file=sys.stderr)
        return 2
    print(page)
    return 0
