"""Run ``normxlogit annotate`` as a user does (its own process, DirectRunner) and measure it.

Each run is a fresh process started the way the console script starts, timed on the wall clock
from start to exit, with its peak resident memory (``VmHWM``, written by the process as it exits;
Linux only) and its counts and batching from the manifest it writes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

# The console script's entry point, plus one thing at exit: the peak resident set size of this
# process image (VmHWM). The kernel's ru_maxrss would not do: across fork + exec it keeps the
# launcher's peak, so every child would report at least the benchmark process's own memory.
CLI = """
import atexit, os, sys
def write_peak_rss():
    with open("/proc/self/status") as src, open(os.environ["NORMXLOGIT_BENCH_RSS"], "w") as dst:
        dst.write(next(line for line in src if line.startswith("VmHWM:")).split()[1])
atexit.register(write_peak_rss)
from normxlogit.pipeline.cli import main
sys.exit(main())
"""


class PipelineRunError(RuntimeError):
    """``normxlogit annotate`` exited with an error; the message ends with its log."""


@dataclass(frozen=True)
class PipelineRun:
    """One finished ``annotate`` run.

    Attributes:
        docs: records in the input.
        seconds: wall time from process start to exit (imports and model loading included).
        peak_rss_mb: the process's peak resident set size, MiB.
        tokens: token rows written (manifest ``counts.tokens``).
        padded_tokens: positions the forward passes ran (manifest ``batching.padded_tokens``).
        docs_annotated: manifest ``counts.docs_annotated``.
    """

    docs: int
    seconds: float
    peak_rss_mb: float
    tokens: int
    padded_tokens: int
    docs_annotated: int


def write_jsonl(path: Path, texts: Sequence[str], copies: int = 1) -> Path:
    """``texts`` as JSON Lines ``{"id", "text"}``, repeated ``copies`` times with distinct ids."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        for copy in range(copies):
            for i, text in enumerate(texts):
                fh.write(json.dumps({"id": f"c{copy}-d{i}", "text": text}, ensure_ascii=False) + "\n")
    return path


def run_annotate(source: Path, output: Path, args: Sequence[str], log: Path) -> PipelineRun:
    """Run ``normxlogit annotate SOURCE --output OUTPUT --id-field id ARGS`` and measure it.

    Raises:
        PipelineRunError: a non-zero exit, with the end of the run's log.
    """
    shutil.rmtree(output, ignore_errors=True)
    cmd = [sys.executable, "-c", CLI, "annotate", str(source), "--output", str(output), "--id-field", "id"]
    rss_file = log.with_suffix(".rss")
    rss_file.unlink(missing_ok=True)
    env = {**os.environ, "NORMXLOGIT_BENCH_RSS": str(rss_file)}
    with open(log, "wb") as fh:
        start = time.perf_counter()
        code = subprocess.run([*cmd, *args], stdout=fh, stderr=subprocess.STDOUT, env=env).returncode
        seconds = time.perf_counter() - start
    if code != 0:
        tail = log.read_text(errors="replace")[-3000:]
        raise PipelineRunError(f"normxlogit annotate exited with {code}:\n{tail}")
    manifest = json.loads((output / "manifest.json").read_text())
    docs = sum(1 for _ in open(source, encoding="utf-8"))
    return PipelineRun(
        docs=docs,
        seconds=seconds,
        peak_rss_mb=int(rss_file.read_text()) / 1024,  # VmHWM is in KiB
        tokens=manifest["counts"]["tokens"],
        padded_tokens=manifest["batching"]["padded_tokens"],
        docs_annotated=manifest["counts"]["docs_annotated"],
    )


def steady_tokens_per_s(small: PipelineRun, large: PipelineRun) -> float:
    """Throughput once running: the extra tokens of the large run over its extra seconds.

    Subtracting a small run of the same command removes the start-up (imports, model loading,
    pipeline construction, the manifest) that does not grow with the corpus.
    """
    return (large.tokens - small.tokens) / max(large.seconds - small.seconds, 1e-9)
