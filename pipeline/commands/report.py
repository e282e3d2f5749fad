"""``normxlogit report``: one self-contained HTML page for a finished run."""

from __future__ import annotations

import argparse
import sys
import time

from normxlogit.pipeline.commands.common import positive_int

NAME = "report"


def add_parser(sub) -> argparse.ArgumentParser:
    """The ``report`` subcommand's parser."""
    r = sub.add_parser(
        NAME,
        help="write a self-contained HTML report of a finished run",
        description="Write one HTML file (no network requests, opens from disk) with the run's "
        "manifest, dead letters, corpus summaries and coloured documents with search, filters (prediction, "
        "source, misclassified only) and sorting by confidence; colours are relative to each document's "
        "median score (a chooser on the page restores the absolute scale). Response runs show the least "
        "likely responses and response tokens instead of the predictions, and with --step-scores a click on "
        "a response token shows its step's attribution and top context tokens. Bidi controls and zero-width "
        "characters in the corpus show as escapes such as \\u202e.",
    )
    r.add_argument("output", metavar="OUT", help="the --output folder of a finished `normxlogit annotate`")
    r.add_argument(
        "--out", default="report.html", metavar="HTML", help="the HTML file to write (default: report.html)"
    )
    r.add_argument(
        "--max-docs",
        type=positive_int,
        default=500,
        help="documents embedded in the page; a larger run is sampled by a hash of doc_id (default: 500)",
    )
    r.add_argument(
        "--stats",
        metavar="DIR",
        help="the --out folder of `normxlogit stats` of this run: its Findings section shows those figures "
        "(top words per slice by mean score or lift with 95%% intervals, lexicon shares); without it the "
        "report computes them for its sampled documents with 200 bootstrap replicates",
    )
    r.add_argument(
        "--compare",
        metavar="DIR",
        help="the --out folder of `normxlogit compare OUT RUN_B`: adds a Comparison section (agreement "
        "per document, the largest differences with intervals, one document coloured by each run)",
    )
    r.add_argument(
        "--evaluate",
        metavar="DIR",
        help="the --output folder of `normxlogit evaluate` on this run's model: adds a Faithfulness section "
        "(every method and metric, mean with its 95%% interval, paired differences to random, and "
        "plausibility when the evaluate run had --rationale-field)",
    )
    r.add_argument(
        "--include-template",
        action="store_true",
        help="response runs: count the tokens a chat template wrote (role markers, a default system "
        "prompt) in the corpus tables and findings; by default they are left out, as special tokens are",
    )
    return r


def run(args: argparse.Namespace, beam_args: list[str]) -> int:
    """Write the report and say where it is."""
    from normxlogit.pipeline.report.build import write_report
    from normxlogit.pipeline.report.findings_input import FindingsDirError
    from normxlogit.transforms.layout import RunNotFoundError

    if beam_args:
        print(f"normxlogit report: error: unrecognized arguments: {' '.join(beam_args)}", file=sys.stderr)
        return 2
    started = time.monotonic()
    try:
        path = write_report(
            args.output,
            args.out,
            args.max_docs,
            args.stats,
            args.compare,
            args.include_template,
            args.evaluate,
        )
    except (RunNotFoundError, FindingsDirError) as err:
        print(f"normxlogit report: error: {err}", file=sys.stderr)
        return 2
    size = path.stat().st_size
    included = "; chat-template tokens included" if args.include_template else ""
    print(f"normxlogit: wrote {path} ({size / 1e6:.2f} MB) in {time.monotonic() - started:.1f} s{included}")
    return 0
