"""Run ``normxlogit annotate`` as a user does (its own process, DirectRunner) and measure it.

Each run is a fresh process started the way the console script starts, timed from the end of its
start-up imports to its exit (and on the wall clock from start to exit), with its peak resident
memory (``VmHWM``, written by the process as it exits; Linux only) and its counts and batching from
the manifest it writes. On request the process's BERT forward pass first sleeps in proportion to
its padded tokens (``sleep_per_padded_token``): a stand-in for a model that takes time without
taking the host's CPU, as a GPU does.
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

from normxlogit.transforms.layout import read_manifest

# The console script's entry point, plus two things. At exit: the peak resident set size of this
# process image (VmHWM; the kernel's ru_maxrss would not do: across fork + exec it keeps the
# launcher's peak, so every child would report at least the benchmark process's own memory), and
# the monotonic clock (one clock for every process on Linux) at the end of the start-up imports and
# at exit. The imports (torch, transformers, Beam: about 5 s, moving by tenths of a second between
# runs on a busy machine) are made before the clock starts, so a run's ``seconds`` do not carry
# their noise; ``annotate`` would make the same imports lazily, and they cancel in a steady-state
# difference anyway. The atexit hook is registered first, so it runs last.
CLI = """
import atexit, json, os, sys, time
def write_run_log():
    with open("/proc/self/status") as src:
        peak_kb = int(next(line for line in src if line.startswith("VmHWM:")).split()[1])
    with open(os.environ["NORMXLOGIT_BENCH_RUN_LOG"], "w") as dst:
        json.dump({"peak_rss_kb": peak_kb, "started": _started, "ended": time.monotonic()}, dst)
atexit.register(write_run_log)
import torch, transformers, apache_beam, pyarrow.parquet
import normxlogit.pipeline.annotate, normxlogit.transforms.model_handler
from normxlogit.pipeline.cli import main
_started = time.monotonic()
sys.exit(main())
"""

# Put before CLI for a run whose model sleeps: the batch engine's device part (``score_prepared``: one
# bucket's forward pass, the NormXLogit heads and the copy of the results to the host, what a GPU
# runs, on the model's forward thread) sleeps NORMXLOGIT_BENCH_SLEEP_PER_TOKEN seconds per element of
# its input ids (batch x padded width), then runs. time.sleep releases the GIL, as a wait on a GPU
# kernel does, so a pipeline that overlaps host work with the model hides the sleep. The seconds
# slept, and the device parts' whole time (sleep and the real work: the time the model is busy), go
# to NORMXLOGIT_BENCH_SLEEP_LOG at exit. With 0 seconds per token it only times the device parts.
# The patch lives in the launched process only: worker processes of --direct_running_mode
# multi_processing do not sleep.
SLEEPY_FORWARD = """
import atexit, functools, json, os, threading, time
from normxlogit import engine
_per_token = float(os.environ["NORMXLOGIT_BENCH_SLEEP_PER_TOKEN"])
_slept = {"seconds": 0.0, "forward_seconds": 0.0, "calls": 0, "padded_tokens": 0}
_lock = threading.Lock()
_real = engine.score_prepared
@functools.wraps(_real)
def sleepy_device_part(sm, prepared, *args, **kwargs):
    n = prepared.padded.input_ids.numel()
    start = time.perf_counter()
    time.sleep(_per_token * n)
    slept = time.perf_counter() - start
    out = _real(sm, prepared, *args, **kwargs)
    with _lock:
        _slept["seconds"] += slept
        _slept["forward_seconds"] += time.perf_counter() - start
        _slept["calls"] += 1
        _slept["padded_tokens"] += n
    return out
engine.score_prepared = sleepy_device_part
def write_sleep_log():
    with open(os.environ["NORMXLOGIT_BENCH_SLEEP_LOG"], "w") as dst:
        json.dump(_slept, dst)
atexit.register(write_sleep_log)
"""


class PipelineRunError(RuntimeError):
    """``normxlogit annotate`` exited with an error; the message ends with its log."""


@dataclass(frozen=True)
class PipelineRun:
    """One finished ``annotate`` run.

    Attributes:
        docs: records in the input.
        seconds: time from the end of the start-up imports to exit (model loading, pipeline
            construction and the run itself included; see ``CLI``).
        peak_rss_mb: the process's peak resident set size, MiB.
        tokens: token rows written (manifest ``counts.tokens``).
        padded_tokens: positions the forward passes ran (manifest ``batching.padded_tokens``).
        docs_annotated: manifest ``counts.docs_annotated``.
        slept_s: with ``sleep_per_padded_token``, the seconds the forward passes slept (else None).
        forward_s: with ``sleep_per_padded_token``, the forward passes' whole seconds (sleep included).
        sleep_calls: with ``sleep_per_padded_token``, the forward passes that slept (else None).
        slept_padded_tokens: with ``sleep_per_padded_token``, the positions those passes ran.
        wall_s: wall time from process start to exit, imports included.
    """

    docs: int
    seconds: float
    peak_rss_mb: float
    tokens: int
    padded_tokens: int
    docs_annotated: int
    slept_s: float | None = None
    forward_s: float | None = None
    sleep_calls: int | None = None
    slept_padded_tokens: int | None = None
    wall_s: float | None = None


def write_jsonl(path: Path, texts: Sequence[str], copies: int = 1) -> Path:
    """``texts`` as JSON Lines ``{"id", "text"}``, repeated ``copies`` times with distinct ids."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        for copy in range(copies):
            for i, text in enumerate(texts):
                fh.write(json.dumps({"id": f"c{copy}-d{i}", "text": text}, ensure_ascii=False) + "\n")
    return path


def run_annotate(
    source: Path,
    output: Path,
    args: Sequence[str],
    log: Path,
    *,
    sleep_per_padded_token: float | None = None,
) -> PipelineRun:
    """Run ``normxlogit annotate SOURCE --output OUTPUT --id-field id ARGS`` and measure it.

    Args:
        sleep_per_padded_token: make BERT's forward pass sleep this many seconds per padded token
            first (see ``SLEEPY_FORWARD``; BERT models only, in-process DirectRunner only).

    Raises:
        PipelineRunError: a non-zero exit, with the end of the run's log.
    """
    shutil.rmtree(output, ignore_errors=True)
    launcher = CLI if sleep_per_padded_token is None else SLEEPY_FORWARD + CLI
    cmd = [
        sys.executable,
        "-c",
        launcher,
        "annotate",
        str(source),
        "--output",
        str(output),
        "--id-field",
        "id",
    ]
    run_file = log.with_suffix(".run.json")
    run_file.unlink(missing_ok=True)
    env = {**os.environ, "NORMXLOGIT_BENCH_RUN_LOG": str(run_file)}
    sleep_file = log.with_suffix(".sleep.json")
    sleep_file.unlink(missing_ok=True)
    if sleep_per_padded_token is not None:
        env["NORMXLOGIT_BENCH_SLEEP_PER_TOKEN"] = repr(float(sleep_per_padded_token))
        env["NORMXLOGIT_BENCH_SLEEP_LOG"] = str(sleep_file)
    with open(log, "wb") as fh:
        start = time.perf_counter()
        code = subprocess.run([*cmd, *args], stdout=fh, stderr=subprocess.STDOUT, env=env).returncode
        wall_s = time.perf_counter() - start
    if code != 0:
        tail = log.read_text(errors="replace")[-3000:]
        raise PipelineRunError(f"normxlogit annotate exited with {code}:\n{tail}")
    manifest = read_manifest(output)
    docs = sum(1 for _ in open(source, encoding="utf-8"))
    run_log = json.loads(run_file.read_text())
    slept = json.loads(sleep_file.read_text()) if sleep_per_padded_token is not None else {}
    return PipelineRun(
        docs=docs,
        seconds=run_log["ended"] - run_log["started"],
        peak_rss_mb=run_log["peak_rss_kb"] / 1024,
        tokens=manifest.counts.tokens,
        padded_tokens=manifest.batching.padded_tokens,
        docs_annotated=manifest.counts.docs_annotated,
        slept_s=slept.get("seconds"),
        forward_s=slept.get("forward_seconds"),
        sleep_calls=slept.get("calls"),
        slept_padded_tokens=slept.get("padded_tokens"),
        wall_s=wall_s,
    )


def steady_tokens_per_s(small: PipelineRun, large: PipelineRun) -> float:
    """Throughput once running: the extra tokens of the large run over its extra seconds.

    Subtracting a small run of the same command removes the start-up (imports, model loading,
    pipeline construction, the manifest) that does not grow with the corpus.
    """
    return (large.tokens - small.tokens) / max(large.seconds - small.seconds, 1e-9)
