"""The same ``annotate`` job, unchanged, on several Beam runners: the rows must not depend on the runner.

One small corpus (JSON Lines with ids, plain text, CSV; one malformed line and one blank line) is
annotated with relative paths from the corpus folder by:

(a) the DirectRunner in this process (the baseline);
(b) the DirectRunner with two worker processes (``multi_processing``);
(c) the PortableRunner against a local job service whose SDK workers come from an external worker
    pool: fresh interpreters, started in another working directory, that see only what the job ships;
(d) the DirectRunner with Beam's shared model (``--model-copies 1`` / ``--large-model``), where the
    model lives in a separate process behind a proxy;
(e) ``deploy/flink/run.sh`` as shipped, submitting to the job service of (c) as to any portable job
    server (Flink's, Spark's).

Every run must produce the same doc ids, positions, token ids and scores (within 1e-5), the same
dead letters, and a manifest whose counts reconcile with its own output files.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pytest

from normxlogit.transforms.layout import ATTRIBUTIONS, ERRORS, MANIFEST_FILE, read_manifest

REVIEWS = [
    "A wonderful, heartfelt film with great acting and a score that lingers for days.",
    "Dull plot and wooden dialogue; I left before the second act.",
    "Not bad at all, though the middle third drags.",
    "The soundtrack alone is worth the ticket.",
    "I laughed, I cried, and I would watch it again tomorrow.",
    "Two hours of my life I will never get back.",
    "Beautifully shot, but the story goes nowhere.",
    "An instant classic: sharp, funny and surprisingly tender.",
]
HEADLINES = [
    "Central bank holds interest rates steady amid slowing inflation",
    "Local team wins the championship after a dramatic overtime finish",
    "",
    "Scientists map the genome of a rare deep-sea octopus",
    "City council approves new bike lanes along the river",
    "Heavy rain expected across the north this weekend",
    "Tech company recalls thousands of faulty chargers",
    "Museum reopens after a two-year renovation",
]
QUESTIONS = [
    "How do I reset my password?",
    "What time does the pharmacy close on Sundays?",
    "Is the museum free for children under twelve?",
    "Can I bring my dog on the train?",
]
# Corpus totals: 9 JSONL lines (one malformed), 8 text lines (one blank), 4 CSV rows.
EXPECTED_COUNTS = {"records_read": 21, "docs_annotated": 19, "skipped_empty": 1, "errors": 1}
JOB_OPTIONS = ("--id-field", "id", "--docs-per-batch", "4", "--batch-tokens", "96")
DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
RUN_TIMEOUT_S = 240
SERVICE_START_TIMEOUT_S = 60


@dataclass(frozen=True)
class Run:
    """A finished run: its manifest, token rows sorted by (doc_id, position), and dead letters."""

    manifest: dict
    rows: pa.Table
    dead_letters: list[dict]


def write_corpus(folder: Path) -> None:
    """Write the three input files under ``folder/in``."""
    inputs = folder / "in"
    inputs.mkdir(parents=True)
    lines = [json.dumps({"id": f"review-{i}", "text": t}) for i, t in enumerate(REVIEWS)]
    lines.insert(3, '{"id": "broken", "text": "unterminated')
    (inputs / "reviews.jsonl").write_text("\n".join(lines) + "\n")
    (inputs / "headlines.txt").write_text("\n".join(HEADLINES) + "\n")
    with open(inputs / "questions.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "text"])
        writer.writerows([[f"q-{i}", q] for i, q in enumerate(QUESTIONS)])


def read_run(out: Path) -> Run:
    """Read a finished run and check what every run must satisfy on its own."""
    manifest = json.loads((out / MANIFEST_FILE).read_text())
    typed = read_manifest(out)
    rows = ds.dataset(out / ATTRIBUTIONS.folder, format="parquet").to_table()
    rows = rows.sort_by([("doc_id", "ascending"), ("position", "ascending")])
    dead = [json.loads(line) for f in ERRORS.paths(out) for line in f.read_text().splitlines()]
    counts = typed.counts
    assert {k: manifest["counts"][k] for k in EXPECTED_COUNTS} == EXPECTED_COUNTS
    assert counts.reconciles
    assert counts.tokens == rows.num_rows > 0
    assert len(set(rows["doc_id"].to_pylist())) == counts.docs_annotated
    assert len(dead) == counts.errors
    # The manifest is written by a worker: the files it lists are exactly the ones on disk.
    on_disk = sorted(
        str(f.relative_to(out)) for f in out.rglob("*") if f.is_file() and f.name != MANIFEST_FILE
    )
    assert sorted(typed.files.all()) == on_disk
    # Local paths are resolved on the launcher, so workers elsewhere read the same files.
    assert all(os.path.isabs(s) for s in rows["source"].to_pylist())
    return Run(manifest, rows, dead)


def assert_same_rows(run: Run, baseline: Run) -> None:
    """Identical ids, positions, tokens and dead letters; scores within 1e-5."""
    for column in ("doc_id", "source", "position", "token_id", "token", "target_id", "prediction_id"):
        assert run.rows[column].to_pylist() == baseline.rows[column].to_pylist(), column
    for column in ("norm", "logat", "score"):
        np.testing.assert_allclose(
            run.rows[column].to_numpy(), baseline.rows[column].to_numpy(), rtol=0, atol=1e-5, err_msg=column
        )
    assert run.manifest["counts"] == baseline.manifest["counts"]

    def letters(r: Run) -> list[tuple]:
        return sorted((d["source"], d["locator"], d["reason"]) for d in r.dead_letters)

    assert letters(run) == letters(baseline)


def job_args(workdir: Path, model: Path, out_name: str) -> list[str]:
    """The job's arguments: inputs, output and model relative to ``workdir``, the launch folder."""
    return ["in", "--output", out_name, "--model", os.path.relpath(model, workdir), *JOB_OPTIONS]


def child_env() -> dict[str, str]:
    """The environment for child processes: this interpreter's bin folder first on PATH.

    Beam's worker pool starts its workers with a bare ``python``; one without Beam would hang the
    job until the runner gives up.
    """
    return {**os.environ, "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")}


def stop_group(proc: subprocess.Popen) -> None:
    """Stop a child started with ``start_new_session`` and every process it started."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # workers the child left behind


def run_launcher(command: list[str], cwd: Path, env: dict[str, str] | None = None) -> None:
    """Run a command that launches a job, failing the test after RUN_TIMEOUT_S."""
    proc = subprocess.Popen(
        command,
        cwd=cwd,
        env={**child_env(), **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = proc.communicate(timeout=RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        stop_group(proc)
        output, _ = proc.communicate()
        pytest.fail(f"{command[:4]} did not finish in {RUN_TIMEOUT_S}s:\n{output[-4000:]}")
    finally:
        stop_group(proc)
    assert proc.returncode == 0, output[-4000:]


def start_service(args: list[str], port: int, cwd: Path, log: Path) -> subprocess.Popen:
    """Start a Beam service module in its own process group and wait until ``port`` accepts."""
    with open(log, "w") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", *args],
            cwd=cwd,
            env=child_env(),
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + SERVICE_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"{args[0]} exited with {proc.returncode}:\n{log.read_text()[-4000:]}")
        with contextlib.suppress(OSError), socket.create_connection(("localhost", port), timeout=1):
            return proc
        time.sleep(0.2)
    stop_group(proc)
    pytest.fail(f"{args[0]} did not listen on port {port} in {SERVICE_START_TIMEOUT_S}s:\n{log.read_text()}")


@dataclass(frozen=True)
class PortableServices:
    """A local job service and an external SDK worker pool, and where their logs go."""

    job_endpoint: str
    worker_pool: str
    worker_pool_log: Path


@pytest.fixture(scope="module")
def portable_services(tmp_path_factory, free_port) -> Iterator[PortableServices]:
    """Start a job service and a worker pool on free loopback ports; always stop both.

    Both run in their own folder, not the launcher's, as on a cluster.
    """
    home = tmp_path_factory.mktemp("beam-services")
    job_port, pool_port = free_port(), free_port()
    procs = []
    try:
        procs.append(
            start_service(
                ["apache_beam.runners.portability.local_job_service_main", "--port", str(job_port)],
                job_port,
                home,
                home / "job_service.log",
            )
        )
        procs.append(
            start_service(
                ["apache_beam.runners.worker.worker_pool_main", "--service_port", str(pool_port)],
                pool_port,
                home,
                home / "worker_pool.log",
            )
        )
        yield PortableServices(f"localhost:{job_port}", f"localhost:{pool_port}", home / "worker_pool.log")
    finally:
        for proc in procs:
            stop_group(proc)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """The folder every run is launched from, holding the corpus."""
    folder = tmp_path_factory.mktemp("runners")
    write_corpus(folder)
    return folder


@pytest.fixture(scope="module")
def baseline(workdir, tiny_classifier, cli) -> Run:
    """(a) The default local runner (Beam's FnApiRunner, two threads) in this process."""
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(workdir)
        assert cli.annotate(*job_args(workdir, tiny_classifier, "out-direct")) == 0
    return read_run(workdir / "out-direct")


def annotate_in(workdir: Path, model: Path, out_name: str, *beam_args: str) -> Run:
    """Launch the job from ``workdir`` in a fresh interpreter; returns the run in ``workdir/out_name``."""
    cli = [sys.executable, "-m", "normxlogit.pipeline.cli", "annotate"]
    run_launcher([*cli, *job_args(workdir, model, out_name), *beam_args], workdir)
    return read_run(workdir / out_name)


def test_direct_runner_in_process(baseline):
    assert baseline.manifest["runner"] == "FnApiRunner"  # the local default: no Prism download
    assert {d["reason"] for d in baseline.dead_letters} == {"malformed_json"}
    ids = set(baseline.rows["doc_id"].to_pylist())
    assert {f"review-{i}" for i in range(len(REVIEWS))} | {f"q-{i}" for i in range(len(QUESTIONS))} <= ids


@pytest.mark.slow
def test_multi_process_direct_runner_matches(workdir, tiny_classifier, baseline):
    run = annotate_in(
        workdir,
        tiny_classifier,
        "out-multi",
        "--direct_num_workers",
        "2",
        "--direct_running_mode",
        "multi_processing",
    )
    assert_same_rows(run, baseline)


@pytest.mark.slow
def test_portable_runner_with_external_workers_matches(workdir, tiny_classifier, baseline, portable_services):
    run = annotate_in(
        workdir,
        tiny_classifier,
        "out-portable",
        "--runner",
        "PortableRunner",
        "--job_endpoint",
        portable_services.job_endpoint,
        "--environment_type",
        "EXTERNAL",
        "--environment_config",
        portable_services.worker_pool,
    )
    assert run.manifest["runner"] == "PortableRunner"
    assert "Starting worker with command" in portable_services.worker_pool_log.read_text()
    assert_same_rows(run, baseline)


@pytest.mark.slow
def test_flink_launch_script_runs_on_a_portable_job_service(
    workdir, tiny_classifier, baseline, portable_services
):
    """deploy/flink/run.sh, unchanged, submits to any portable job server: here the local one."""
    env = {
        "JOB_ENDPOINT": portable_services.job_endpoint,
        "ARTIFACT_ENDPOINT": portable_services.job_endpoint,
        "ENVIRONMENT": "external",
        "WORKER_POOL": portable_services.worker_pool,
    }
    run_launcher(
        ["bash", str(DEPLOY / "flink" / "run.sh"), *job_args(workdir, tiny_classifier, "out-flink")],
        workdir,
        env,
    )
    run = read_run(workdir / "out-flink")
    assert run.manifest["runner"] == "PortableRunner"
    assert_same_rows(run, baseline)


@pytest.mark.slow
@pytest.mark.parametrize("sharing", [["--model-copies", "1"], ["--large-model"]], ids=["copies", "large"])
def test_model_shared_across_processes_matches(workdir, tiny_classifier, baseline, sharing):
    run = annotate_in(workdir, tiny_classifier, f"out-shared{sharing[0]}", *sharing)
    assert run.manifest["options"]["model_copies" if "--model-copies" in sharing else "large_model"]
    assert_same_rows(run, baseline)
