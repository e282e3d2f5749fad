"""Remote inputs and outputs: an S3 round trip against moto, and http(s) inputs from a local server.

All traffic stays on the loopback interface. As a safety net, the AWS environment points every S3
client that does not get Beam's ``--s3_endpoint_url`` at a closed loopback port, with fake
credentials and no instance metadata, so a lost option fails the run instead of reaching AWS.
Runs are launched in a fresh interpreter with a time limit, because Beam retries S3 errors with
exponential backoff for minutes.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import http.server
import json
import os
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from moto.server import ThreadedMotoServer

import normxlogit
from normxlogit.transforms.layout import ATTRIBUTIONS, MANIFEST_FILE

REVIEWS = [
    "A wonderful, heartfelt film with great acting.",
    "Dull plot and wooden dialogue; I left early.",
    "Not bad at all.",
    "The soundtrack alone is worth the ticket.",
    "Two hours of my life I will never get back.",
]
QUESTIONS = [
    "How do I reset my password?",
    "What time does the pharmacy close on Sundays?",
    "Can I bring my dog on the train?",
]
RUN_TIMEOUT_S = 240
MULTI_PROCESS = ("--direct_num_workers", "2", "--direct_running_mode", "multi_processing")


def jsonl(texts: list[str]) -> bytes:
    return "".join(json.dumps({"text": t}) + "\n" for t in texts).encode()


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch, free_port) -> None:
    """Fake AWS credentials, no metadata service, a dead loopback default endpoint, no proxies."""
    dead = f"http://127.0.0.1:{free_port()}"
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    monkeypatch.setenv("AWS_ENDPOINT_URL", dead)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


def run_cli(args: list[str]) -> str:
    """Run ``normxlogit annotate`` in a fresh interpreter; fail the test after RUN_TIMEOUT_S.

    Returns:
        The combined stdout and stderr.
    """
    proc = subprocess.Popen(
        [sys.executable, "-m", "normxlogit.pipeline.cli", "annotate", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = proc.communicate(timeout=RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        pytest.fail(f"annotate did not finish in {RUN_TIMEOUT_S}s:\n{output[-4000:]}")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # worker processes left behind
    assert proc.returncode == 0, output[-4000:]
    return output


def assert_scores_match_api(rows: pa.Table, texts_by_doc: dict[str, str], model: Path) -> None:
    """Each document's token scores equal the Python API's on the same text."""
    sm = normxlogit.load_model(model)
    doc_ids = sorted(texts_by_doc)
    for doc_id, expected in zip(doc_ids, normxlogit.score(sm, [texts_by_doc[d] for d in doc_ids])):
        doc = rows.filter(pc.equal(rows["doc_id"], doc_id)).sort_by("position")
        assert doc["token"].to_pylist() == expected.tokens, doc_id
        np.testing.assert_allclose(doc["score"].to_numpy(), expected.scores, rtol=1e-5, atol=1e-6)


@dataclass(frozen=True)
class S3Bucket:
    """A bucket on the moto server, a client for it, and the Beam options that reach it."""

    name: str
    client: object
    beam_args: tuple[str, ...]

    def put(self, key: str, body: bytes) -> None:
        self.client.put_object(Bucket=self.name, Key=key, Body=body)

    def get(self, key: str) -> bytes:
        return self.client.get_object(Bucket=self.name, Key=key)["Body"].read()

    def keys(self, prefix: str) -> list[str]:
        listing = self.client.list_objects_v2(Bucket=self.name, Prefix=prefix)
        return sorted(obj["Key"] for obj in listing.get("Contents", []))


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    """A moto S3 server on a free loopback port, stopped after the module."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3(moto_endpoint) -> S3Bucket:
    """A fresh bucket for one test."""
    client = boto3.client(
        "s3",
        endpoint_url=moto_endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    name = f"normxlogit-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=name)
    beam_args = (
        "--s3_endpoint_url",
        moto_endpoint,
        "--s3_access_key_id",
        "testing",
        "--s3_secret_access_key",
        "testing",
        "--s3_region_name",
        "us-east-1",
    )
    return S3Bucket(name, client, beam_args)


@pytest.mark.parametrize(
    "beam_args",
    [
        pytest.param((), id="in_process"),
        pytest.param(MULTI_PROCESS, id="worker_processes", marks=pytest.mark.slow),
    ],
)
def test_s3_round_trip(s3, tiny_classifier, beam_args, cli):
    s3.put("in/reviews.jsonl", jsonl(REVIEWS))
    s3.put("in/questions.jsonl", jsonl(QUESTIONS[:2]) + b'{"text": broken\n' + jsonl(QUESTIONS[2:]))
    s3.put("in/notes.txt", b"not matched by the glob\n")
    stale = f"out/{ATTRIBUTIONS.name(0, 3)}"
    s3.put(stale, b"left behind by a run that died")
    bucket = f"s3://{s3.name}"
    args = [f"{bucket}/in/*.jsonl", "--output", f"{bucket}/out", "--model", str(tiny_classifier)]

    run_cli([*args, *s3.beam_args, *beam_args])

    manifest = json.loads(s3.get(f"out/{MANIFEST_FILE}"))
    counts = manifest["counts"]
    assert counts == {
        "records_read": len(REVIEWS) + len(QUESTIONS) + 1,
        "docs_annotated": len(REVIEWS) + len(QUESTIONS),
        "skipped_empty": 0,
        "errors": 1,
        "tokens": counts["tokens"],
    }
    files = [f"out/{name}" for names in manifest["files"].values() for name in names]
    # Exactly the finalised files and the manifest: no stale part, no Beam temporary objects.
    assert s3.keys("out/") == sorted([*files, f"out/{MANIFEST_FILE}"])
    assert stale not in files
    rows = pa.concat_tables(
        pq.read_table(pa.BufferReader(s3.get(f"out/{name}"))) for name in manifest["files"]["attributions"]
    )
    assert rows.num_rows == counts["tokens"]
    texts_by_doc = {f"{bucket}/in/reviews.jsonl#L{i + 1}": t for i, t in enumerate(REVIEWS)}
    for line, text in zip((1, 2, 4), QUESTIONS):
        texts_by_doc[f"{bucket}/in/questions.jsonl#L{line}"] = text
    assert set(rows["doc_id"].to_pylist()) == set(texts_by_doc)
    assert_scores_match_api(rows, texts_by_doc, tiny_classifier)
    [letter] = [json.loads(line) for line in s3.get(f"out/{manifest['files']['errors'][0]}").splitlines()]
    assert (letter["source"], letter["locator"], letter["reason"]) == (
        f"{bucket}/in/questions.jsonl",
        "line 3",
        "malformed_json",
    )

    # A finished run on S3 is refused without --overwrite, before anything runs.
    assert cli.annotate(*args, *s3.beam_args) == 2
    assert s3.keys("out/") == sorted([*files, f"out/{MANIFEST_FILE}"])


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    """Serves a folder; records request paths instead of logging them."""

    def __init__(self, *args, requests: list[str], **kwargs):
        self._requests = requests
        super().__init__(*args, **kwargs)

    def log_message(self, fmt, *args) -> None:
        self._requests.append(self.path)


@pytest.fixture
def http_folder(tmp_path) -> Iterator[tuple[Path, str, list[str]]]:
    """(folder, base URL, requested paths): a folder served on a free loopback port, then stopped."""
    folder = tmp_path / "served"
    folder.mkdir()
    requests: list[str] = []
    handler = functools.partial(_QuietHandler, directory=str(folder), requests=requests)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield folder, f"http://127.0.0.1:{server.server_address[1]}", requests
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_http_inputs(http_folder, tiny_classifier, tmp_path, run_files):
    folder, base, requests = http_folder
    (folder / "x.jsonl").write_bytes(jsonl(REVIEWS))
    (folder / "y.txt.gz").write_bytes(gzip.compress("\n".join(QUESTIONS).encode()))
    out = tmp_path / "out"

    run_cli([f"{base}/x.jsonl", f"{base}/y.txt.gz", "--output", str(out), "--model", str(tiny_classifier)])

    assert {"/x.jsonl", "/y.txt.gz"} <= set(requests)
    counts = run_files.manifest(out)["counts"]
    assert counts["records_read"] == counts["docs_annotated"] == len(REVIEWS) + len(QUESTIONS)
    rows = run_files.rows(out)
    assert counts["tokens"] == rows.num_rows
    texts_by_doc = {f"{base}/x.jsonl#L{i + 1}": t for i, t in enumerate(REVIEWS)}
    texts_by_doc.update({f"{base}/y.txt.gz#L{i + 1}": t for i, t in enumerate(QUESTIONS)})
    assert set(rows["doc_id"].to_pylist()) == set(texts_by_doc)
    assert set(rows["source"].to_pylist()) == {f"{base}/x.jsonl", f"{base}/y.txt.gz"}
    assert_scores_match_api(rows, texts_by_doc, tiny_classifier)
