"""``normxlogit compare``: two finished runs over the same documents, word by word, across tokenizers."""

from __future__ import annotations

import argparse
import sys
import time

from normxlogit.pipeline.commands.common import add_bootstrap_options, positive_int

NAME = "compare"


def add_parser(sub) -> argparse.ArgumentParser:
    """The ``compare`` subcommand's parser."""
    c = sub.add_parser(
        NAME,
        help="compare two runs over the same documents (any two models and tokenizers), word by word",
        description="Align two finished runs' words on the text itself (word_index words from character "
        "offsets, never tokenizer symbols; subword scores summed into words; special and chat-template "
        "tokens left out) in the documents both runs hold with the same text, and write to DIR: "
        "documents.parquet (per document: Spearman, Kendall tau-b, top-k Jaccard and sign agreement of "
        "the two runs' word scores, char_coverage, both predictions), words.parquet (per slice and word: "
        "each run's mean score, delta = mean_b - mean_a with a paired 95% document-bootstrap interval, "
        "ranks), flips.parquet (words whose sign or top-k membership flips, in how many documents each "
        "way) and summary.json (documents in both runs or one, median char_coverage and Spearman with "
        "intervals, the options). Rank-based figures are primary: two models' scores have different scales. "
        "Chat runs: documents are matched on their rendered text, so runs whose models render chats with "
        "different templates share no document; char_coverage counts the template's characters too.",
    )
    c.add_argument("run_a", metavar="RUN_A", help="the --output folder of a finished `normxlogit annotate`")
    c.add_argument("run_b", metavar="RUN_B", help="another one over the same documents")
    c.add_argument(
        "--out", required=True, metavar="DIR", help="folder for documents.parquet, words.parquet, ..."
    )
    c.add_argument(
        "--by",
        action="append",
        default=[],
        metavar="FIELD",
        help="also slice words.parquet and flips.parquet by this field (RUN_A's value): prediction, target, "
        "source, segment or a --keep-fields field both runs have; repeat for several",
    )
    c.add_argument(
        "--top-k",
        type=positive_int,
        default=5,
        metavar="K",
        help="k of topk_jaccard and top-k flips (default: 5)",
    )
    c.add_argument(
        "--standardise",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="z-score word scores within each document, per run, before the means of words.parquet "
        "(default: on; --no-standardise for raw scores)",
    )
    add_bootstrap_options(c, "no interval, p-value or rank")
    return c


def run(args: argparse.Namespace, beam_args: list[str]) -> int:
    """Compare the runs and write DIR, or say in one line why not."""
    from pathlib import Path

    from normxlogit.pipeline.findings.bootstrap import Resampling
    from normxlogit.pipeline.findings.compare import CompareError, CompareOptions, compare_runs
    from normxlogit.pipeline.findings.slices import SliceError
    from normxlogit.transforms.layout import RunNotFoundError

    if beam_args:
        print(f"normxlogit {NAME}: error: unrecognized arguments: {' '.join(beam_args)}", file=sys.stderr)
        return 2
    started = time.monotonic()
    options = CompareOptions(
        by=tuple(args.by),
        top_k=args.top_k,
        standardise=args.standardise,
        casefold=args.casefold,
        min_docs=args.min_docs,
        resampling=Resampling(replicates=args.bootstrap, seed=args.seed),
    )
    try:
        summary = compare_runs(Path(args.run_a), Path(args.run_b), Path(args.out), options)
    except (RunNotFoundError, SliceError, CompareError) as err:
        print(f"normxlogit {NAME}: error: {err}", file=sys.stderr)
        return 2
    docs, rho, cov = summary["documents"], summary["spearman"], summary["char_coverage"]
    print(
        f"normxlogit: wrote {args.out}: {docs['compared']:,} documents compared (only in A: "
        f"{docs['only_a']:,}, only in B: {docs['only_b']:,}, texts differ: {docs['texts_differ']:,}); "
        f"median Spearman {_figure(rho)}, median char_coverage {_figure(cov)} "
        f"in {time.monotonic() - started:.1f} s"
    )
    return 0


def _figure(figure: dict) -> str:
    """``0.715 [0.68, 0.75]``, or ``n/a`` without a value."""
    if figure["median"] is None:
        return "n/a"
    return f"{figure['median']:.3f} [{figure['ci_low']:.3f}, {figure['ci_high']:.3f}]"
