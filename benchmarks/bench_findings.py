"""Scale of the findings commands: time and peak memory of ``stats`` and ``compare`` on synthetic runs
of 10,000 and 100,000 documents, and whether memory stays flat (goal: 100k / 10k peak RSS <= 1.2).

Runs come from ``synthetic_run.py`` (one part file, row groups of 512 documents, a documents
table), written once per size under ``--work`` by a child process, so that this process stays small
(no torch). Each command runs in a fresh process; its peak RSS is ``ru_maxrss`` of that child
(``os.wait4``), which on Linux also counts the launcher's memory at fork time, so the launcher's
own peak RSS is printed beside it; ``vmhwm_mb`` is the child's own high-water mark after exec
(``/proc/self/status``), read by a wrapper at exit.

A command is a function in ``COMMANDS``: given the work folder, a size and an output folder, it
asks ``synthetic`` for the runs it needs and returns its argv (after ``normxlogit``).

    python benchmarks/bench_findings.py [--sizes 10000 100000] [--bootstrap 1000] [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "out" / "bench_findings.json"
SIZES = (10_000, 100_000)
GOAL_RATIO = 1.2
# Runs ``normxlogit ARGS`` and, at exit, writes the process's VmHWM (KiB) to NORMXLOGIT_BENCH_HWM.
CLI = """
import atexit, os, sys
def write_hwm():
    with open("/proc/self/status") as src:
        kb = next(line for line in src if line.startswith("VmHWM:")).split()[1]
    with open(os.environ["NORMXLOGIT_BENCH_HWM"], "w") as dst:
        dst.write(kb)
atexit.register(write_hwm)
from normxlogit.pipeline.cli import main
sys.exit(main(sys.argv[1:]))
"""
WRITE_RUN = """
import importlib.util, sys
from pathlib import Path
spec = importlib.util.spec_from_file_location("synthetic_run", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
module.write_synthetic_run(Path(sys.argv[2]), int(sys.argv[3]), seed=int(sys.argv[4]), documents=True)
"""


def synthetic(work: Path, docs: int, seed: int = 0) -> Path:
    """A finished synthetic run of ``docs`` documents with a documents table (written once, reused)."""
    run = work / f"synthetic-{docs}-seed{seed}"
    if not (run / "manifest.json").is_file():
        shutil.rmtree(run, ignore_errors=True)
        started = time.monotonic()
        cmd = [
            sys.executable,
            "-c",
            WRITE_RUN,
            str(HERE / "synthetic_run.py"),
            str(run),
            str(docs),
            str(seed),
        ]
        subprocess.run(cmd, check=True)
        print(f"wrote {run} in {time.monotonic() - started:.1f} s", flush=True)
    return run


def stats_argv(work: Path, docs: int, out: Path, options: argparse.Namespace) -> list[str]:
    """``normxlogit stats`` of one synthetic run, sliced by prediction and target."""
    run = synthetic(work, docs)
    by = ["--by", "prediction", "--by", "target"]
    return ["stats", str(run), *by, "--out", str(out), "--bootstrap", str(options.bootstrap)]


# A second run of a synthetic run's documents (the same texts and tokens, as two models of one
# tokenizer would give): its scores are half the first run's plus N(0, 3) noise, seeded.
RESCORE_RUN = """
import shutil, sys
from pathlib import Path
import numpy as np, pyarrow as pa, pyarrow.parquet as pq
src, dst, seed = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
shutil.copytree(src, dst)
rng = np.random.default_rng(seed)
for path in sorted((src / "attributions").glob("*.parquet")):
    reader = pq.ParquetFile(path)
    target = dst / "attributions" / path.name
    with pq.ParquetWriter(target, reader.schema_arrow, compression="zstd") as writer:
        for group in range(reader.num_row_groups):
            table = reader.read_row_group(group)
            i = table.schema.get_field_index("score")
            score = 0.5 * table["score"].to_numpy() + rng.normal(0, 3, table.num_rows)
            writer.write_table(table.set_column(i, table.schema.field(i), pa.array(score.astype(np.float32))))
"""


def rescored(work: Path, docs: int, seed: int = 1) -> Path:
    """``synthetic(work, docs)`` rescored (``RESCORE_RUN``), written once, reused."""
    run = work / f"synthetic-{docs}-rescored{seed}"
    if not (run / "manifest.json").is_file():
        shutil.rmtree(run, ignore_errors=True)
        started = time.monotonic()
        cmd = [sys.executable, "-c", RESCORE_RUN, str(synthetic(work, docs)), str(run), str(seed)]
        subprocess.run(cmd, check=True)
        print(f"wrote {run} in {time.monotonic() - started:.1f} s", flush=True)
    return run


def compare_argv(work: Path, docs: int, out: Path, options: argparse.Namespace) -> list[str]:
    """``normxlogit compare`` of a synthetic run and its rescored copy, sliced by prediction."""
    runs = [str(synthetic(work, docs)), str(rescored(work, docs))]
    return ["compare", *runs, "--by", "prediction", "--out", str(out), "--bootstrap", str(options.bootstrap)]


# name -> argv builder
COMMANDS: dict[str, Callable[[Path, int, Path, argparse.Namespace], list[str]]] = {
    "stats": stats_argv,
    "compare": compare_argv,
}


def measure(argv: list[str], hwm_file: Path) -> dict:
    """Run ``normxlogit ARGV`` in a fresh process: wall seconds, ru_maxrss and VmHWM in MiB."""
    env = {**os.environ, "NORMXLOGIT_BENCH_HWM": str(hwm_file)}
    started = time.monotonic()
    child = subprocess.Popen([sys.executable, "-c", CLI, *argv], env=env)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.monotonic() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit(f"normxlogit {' '.join(argv)} exited with {child.returncode}")
    return {
        "wall_s": round(wall, 2),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
        "vmhwm_mb": round(int(hwm_file.read_text()) / 1024, 1),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--bootstrap", type=int, default=1000, help="B of stats and compare (default: 1000)")
    parser.add_argument("--commands", nargs="+", default=list(COMMANDS), choices=list(COMMANDS))
    parser.add_argument(
        "--work", type=Path, default=None, help="folder for the runs (default: a temporary one)"
    )
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-findings-") as temp:
        work = args.work or Path(temp)
        work.mkdir(parents=True, exist_ok=True)
        for docs in args.sizes:  # write the runs first: their memory is not the commands'
            synthetic(work, docs)
            if "compare" in args.commands:
                rescored(work, docs)
        launcher_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        results = []
        for name in args.commands:
            for docs in args.sizes:
                argv = COMMANDS[name](work, docs, work / f"{name}-{docs}", args)
                figures = measure(argv, work / f"{name}-{docs}.hwm")
                results.append({"command": name, "docs": docs, **figures})
                print(f"{name} {docs:,} docs: {figures}", flush=True)
    ratios = {}
    print(f"\n{'command':<10}{'docs':>10}{'wall s':>10}{'peak RSS MiB':>15}{'VmHWM MiB':>12}{'CPU s':>9}")
    for r in results:
        print(
            f"{r['command']:<10}{r['docs']:>10,}{r['wall_s']:>10.1f}{r['peak_rss_mb']:>15.1f}"
            f"{r['vmhwm_mb']:>12.1f}{r['cpu_s']:>9.1f}"
        )
    for name in args.commands:
        by_size = {r["docs"]: r for r in results if r["command"] == name}
        small, large = min(by_size), max(by_size)
        if small != large:
            ratio = by_size[large]["peak_rss_mb"] / by_size[small]["peak_rss_mb"]
            ratios[name] = {"docs": [small, large], "peak_rss_ratio": round(ratio, 3), "goal": GOAL_RATIO}
            verdict = "within" if ratio <= GOAL_RATIO else "above"
            print(
                f"{name}: peak RSS {large:,} / {small:,} docs = {ratio:.3f} ({verdict} the goal {GOAL_RATIO})"
            )
    print(f"launcher peak RSS {launcher_mb:.1f} MiB (ru_maxrss of a child counts it)")
    payload = {
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cores": len(os.sched_getaffinity(0)),
            "python": platform.python_version(),
            "load_average": round(os.getloadavg()[0], 2),
        },
        "bootstrap": args.bootstrap,
        "launcher_peak_rss_mb": round(launcher_mb, 1),
        "results": results,
        "ratios": ratios,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
