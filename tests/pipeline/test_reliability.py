"""Nothing lost: every record is annotated or dead-lettered with its reason, and counts reconcile.

Also: bad whole inputs fail before anything is written, a killed run leaves nothing visible,
re-runs are identical, and pickle weights are refused by default.
"""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
import transformers

from normxlogit.pipeline.cli import main

LONG = " ".join(f"word{i}" for i in range(200))


def _dirty_corpus(folder: Path) -> dict[str, str]:
    """Files with every bad case; returns the expected dead-letter reason per (file, locator)."""
    txt = [
        b"a good line of text",
        b"",
        b"   \t ",
        b"nul\x00inside",
        b"bad \xff\xfe utf-8",
        LONG.encode(),
        b"another good line",
    ]
    (folder / "lines.txt").write_bytes(b"\n".join(txt) + b"\n")
    jsonl = [
        '{"id": "j1", "text": "a good json record"}',
        '{"id": "j2", "text": "unterminated"',
        "[1, 2, 3]",
        '{"id": "j4"}',
        '{"id": "j5", "text": null}',
        '{"id": "j6", "text": 42}',
        '{"id": "j1", "text": "the same id as the first record"}',
        '{"id": "j8", "text": ""}',
        '{"text": "a record without an id"}',
        json.dumps({"id": "j10", "text": "emoji 🙂 and right-to-left שלום text"}),
    ]
    (folder / "records.jsonl").write_text("\n".join(jsonl) + "\n")
    pq.write_table(
        pa.table(
            {"id": ["p1", "p2", "p3", "j1"], "text": ["a parquet row", None, "  ", "repeats a json id"]}
        ),
        folder / "rows.parquet",
    )
    return {
        ("lines.txt", "line 4"): "nul_bytes",
        ("lines.txt", "line 5"): "invalid_utf8",
        ("records.jsonl", "line 2"): "malformed_json",
        ("records.jsonl", "line 3"): "not_an_object",
        ("records.jsonl", "line 4"): "missing_text",
        ("records.jsonl", "line 5"): "null_text",
        ("records.jsonl", "line 6"): "non_string_text",
        ("records.jsonl", "line 7"): "duplicate_id",
        ("records.jsonl", "line 9"): "missing_id",
        ("rows.parquet", "row 2"): "null_text",
        ("rows.parquet", "row 4"): "duplicate_id",
    }


def test_dirty_corpus_every_record_accounted_for(tmp_path, tiny_classifier, run_files):
    inputs = tmp_path / "in"
    inputs.mkdir()
    expected = _dirty_corpus(inputs)
    out = tmp_path / "out"
    assert (
        main(
            [
                "annotate",
                str(inputs),
                "--output",
                str(out),
                "--model",
                str(tiny_classifier),
                "--id-field",
                "id",
                "--max-length",
                "32",
            ]
        )
        == 0
    )

    letters = run_files.dead_letters(out)
    got = {(Path(d["source"]).name, d["locator"]): d["reason"] for d in letters}
    assert got == expected
    assert all(d["message"] and d["excerpt"] is not None for d in letters)

    counts = run_files.manifest(out)["counts"]
    rows = run_files.rows(out)
    docs = set(rows["doc_id"].to_pylist())
    # 7 lines + 10 JSON lines + 4 rows; 4 empty/whitespace records (2 lines, 1 JSON, 1 row) are
    # skipped, not errors.
    assert counts == {
        "records_read": 21,
        "docs_annotated": len(docs),
        "skipped_empty": 4,
        "errors": len(letters),
        "tokens": rows.num_rows,
    }
    assert counts["records_read"] == counts["docs_annotated"] + counts["skipped_empty"] + counts["errors"]
    assert {"j1", "j10", "p1"} <= docs
    first_j1 = rows.filter(pa.compute.equal(rows["doc_id"], "j1"))
    assert "".join(first_j1["token"].to_pylist()[1:-1]) == "agoodjsonrecord"  # the first j1
    long_doc = rows.filter(pa.compute.equal(rows["doc_id"], f"{inputs / 'lines.txt'}#L6"))
    assert long_doc.num_rows == 32 and all(long_doc["truncated"].to_pylist())
    short_doc = rows.filter(pa.compute.equal(rows["doc_id"], f"{inputs / 'lines.txt'}#L1"))
    assert not any(short_doc["truncated"].to_pylist())


def test_truncated_gzip_names_the_file_and_writes_nothing(tmp_path, tiny_classifier, capsys):
    data = gzip.compress(("some text on a line\n" * 5000).encode())
    bad = tmp_path / "cut.txt.gz"
    bad.write_bytes(data[: len(data) // 2])
    out = tmp_path / "out"
    assert main(["annotate", str(bad), "--output", str(out), "--model", str(tiny_classifier)]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "truncated" in err
    assert not (out / "manifest.json").exists()
    assert not list(out.rglob("*.parquet")) and not list(out.rglob("*.jsonl"))


def test_pickle_weights_refused_unless_allowed(tmp_path, tiny_classifier, capsys):
    folder = tmp_path / "pickled"
    model = transformers.AutoModelForSequenceClassification.from_pretrained(tiny_classifier)
    model.save_pretrained(folder)
    transformers.AutoTokenizer.from_pretrained(tiny_classifier).save_pretrained(folder)
    for weights in folder.glob("*.safetensors"):  # keep only a pickled state dict
        weights.unlink()
    torch.save(model.state_dict(), folder / "pytorch_model.bin")
    src = tmp_path / "x.txt"
    src.write_text("some text\n")
    assert main(["annotate", str(src), "--output", str(tmp_path / "o1"), "--model", str(folder)]) == 2
    assert "--allow-pickle" in capsys.readouterr().err
    assert not (tmp_path / "o1").exists(), "refused before anything is written"
    assert (
        main(
            ["annotate", str(src), "--output", str(tmp_path / "o2"), "--model", str(folder), "--allow-pickle"]
        )
        == 0
    )


def test_two_runs_give_identical_rows(tmp_path, tiny_causal_lm, run_files):
    src = tmp_path / "texts.txt"
    src.write_text("\n".join(f"text number {i} " + "and more " * (i % 7) for i in range(40)))
    tables = []
    for name in ("a", "b"):
        out = tmp_path / name
        assert (
            main(
                [
                    "annotate",
                    str(src),
                    "--output",
                    str(out),
                    "--model",
                    str(tiny_causal_lm),
                    "--docs-per-batch",
                    "16",
                    "--batch-tokens",
                    "256",
                ]
            )
            == 0
        )
        tables.append(run_files.rows(out).sort_by([("doc_id", "ascending"), ("position", "ascending")]))
    a, b = tables
    for column in ("doc_id", "position", "token_id", "token", "target_id", "prediction"):
        assert a[column].to_pylist() == b[column].to_pylist()
    np.testing.assert_allclose(a["score"].to_numpy(), b["score"].to_numpy(), rtol=1e-6, atol=1e-7)


@pytest.mark.slow
def test_killed_run_leaves_nothing_visible_and_rerun_succeeds(tmp_path, tiny_causal_lm, run_files):
    src = tmp_path / "big.txt"
    src.write_text("\n".join(f"document {i}: " + "lorem ipsum dolor " * (5 + i % 40) for i in range(30000)))
    out = tmp_path / "out"
    cmd = [
        sys.executable,
        "-m",
        "normxlogit.pipeline.cli",
        "annotate",
        str(src),
        "--output",
        str(out),
        "--model",
        str(tiny_causal_lm),
        "--docs-per-batch",
        "8",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not list(out.glob("attributions/beam-temp-*")):
            assert proc.poll() is None, "the run ended before it could be killed"
            time.sleep(0.2)
        time.sleep(2)  # let it write some temporary Parquet
        assert proc.poll() is None
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    assert not (out / "manifest.json").exists()
    assert not list(out.glob("attributions/part-*.parquet"))

    small = tmp_path / "small.txt"
    small.write_text("one\ntwo\nthree\n")
    assert main(["annotate", str(small), "--output", str(out), "--model", str(tiny_causal_lm)]) == 0
    counts = run_files.manifest(out)["counts"]
    assert counts["records_read"] == counts["docs_annotated"] == 3
    assert not list(out.glob("attributions/beam-temp-*"))
    assert set(run_files.rows(out)["source"].to_pylist()) == {str(small)}


def test_offline_by_default():
    import normxlogit.loading  # noqa: F401  (sets the variable on import)

    assert os.environ.get("HF_HUB_OFFLINE") == "1"
