"""``normxlogit stats``: word statistics per slice of a finished run, with document-bootstrap intervals."""

from __future__ import annotations

import argparse
import sys
import time

from normxlogit.pipeline.commands.common import add_bootstrap_options, non_negative_int

NAME = "stats"


def add_parser(sub) -> argparse.ArgumentParser:
    """The ``stats`` subcommand's parser."""
    s = sub.add_parser(
        NAME,
        help="word statistics per slice of a finished run, with 95%% document-bootstrap intervals",
        description="Write DIR/words.parquet: per slice (the corpus '*', and each value of each --by "
        "field) and word (the run's word_index words, a word's score the sum of its tokens'), its "
        "documents, occurrences, mean score and share of the slice's absolute score with 95% "
        "intervals, its lift (mean in the slice / mean outside it) and a p-value (mean in the slice == "
        "mean outside; for '*', mean == 0) with Benjamini-Hochberg q-values per slice. Intervals and "
        "p-values come from a bootstrap that resamples documents, not tokens (a document's tokens are "
        "not independent). With --lexicon, DIR/lexicon.parquet: per slice and category the share of "
        "absolute score on the category's words, and its difference between every two slices of a "
        "field, with intervals. DIR/summary.json: options, counts per slice, and what each figure is.",
    )
    s.add_argument("output", metavar="RUN", help="the --output folder of a finished `normxlogit annotate`")
    s.add_argument(
        "--by",
        action="append",
        required=True,
        metavar="FIELD",
        help="slice by this field: prediction, target, source, segment (response runs: prompt, response, "
        "a chat role) or a --keep-fields field of the run; repeat for several",
    )
    s.add_argument("--out", required=True, metavar="DIR", help="folder for words.parquet, summary.json, ...")
    add_bootstrap_options(s, "no interval and no test")
    s.add_argument(
        "--top",
        type=non_negative_int,
        default=5,
        metavar="N",
        help="print each slice's N words of highest mean score that have an interval (default: 5; 0: none)",
    )
    s.add_argument(
        "--lexicon",
        metavar="FILE",
        help='categories of words: JSON {"category": ["word", ...]} or CSV with columns category,word '
        "(lower-cased too with --casefold)",
    )
    s.add_argument(
        "--include-template",
        action="store_true",
        help="response runs: count the words a chat template wrote (role markers, a default system "
        "prompt); by default they are left out, as special tokens are",
    )
    return s


def run(args: argparse.Namespace, beam_args: list[str]) -> int:
    """Compute and write the statistics, or say in one line why not."""
    from pathlib import Path

    from normxlogit.pipeline.findings.bootstrap import Resampling
    from normxlogit.pipeline.findings.lexicon import LexiconError, read_lexicon
    from normxlogit.pipeline.findings.slices import SliceError
    from normxlogit.pipeline.findings.stats import StatsOptions, compute_stats, write_findings
    from normxlogit.pipeline.findings.terminal import top_word_lines
    from normxlogit.transforms.layout import RunNotFoundError

    if beam_args:
        print(f"normxlogit {NAME}: error: unrecognized arguments: {' '.join(beam_args)}", file=sys.stderr)
        return 2
    started = time.monotonic()
    try:
        options = StatsOptions(
            by=tuple(args.by),
            resampling=Resampling(replicates=args.bootstrap, seed=args.seed),
            min_docs=args.min_docs,
            casefold=args.casefold,
            lexicon=read_lexicon(Path(args.lexicon), casefold=args.casefold) if args.lexicon else None,
            include_template=args.include_template,
        )
        findings = compute_stats(Path(args.output), options)
    except (RunNotFoundError, SliceError, LexiconError) as err:
        print(f"normxlogit {NAME}: error: {err}", file=sys.stderr)
        return 2
    paths = write_findings(findings, Path(args.out))
    if args.include_template:
        print("normxlogit: chat-template tokens included (--include-template)")
    for line in top_word_lines(findings.words, args.top, "mean_score", "mean_ci_low", "mean_ci_high"):
        print(line)
    print(
        f"normxlogit: wrote {', '.join(str(p) for p in paths)} ({findings.words.num_rows:,} slice-word rows) "
        f"in {time.monotonic() - started:.1f} s"
    )
    return 0
