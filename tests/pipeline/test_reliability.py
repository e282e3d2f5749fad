"""Nothing lost: every record is annotated or dead-lettered with its reason, and counts reconcile.

Also: bad whole inputs fail before anything is written, a running folder is refused and a killed
run's is cleared only with --overwrite, re-runs are identical, and pickle weights are refused by
default. Manifest faults and unfinished folders: test_output_folder.py.
"""

from __future__ import annotations

import gc
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
from normxlogit.transforms.layout import RUNNING_FILE

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


def test_dirty_corpus_every_record_accounted_for(tmp_path, tiny_classifier, run_files, cli):
    inputs = tmp_path / "in"
    inputs.mkdir()
    expected = _dirty_corpus(inputs)
    out = tmp_path / "out"
    assert (
        cli.annotate(
            inputs, "--output", out, "--model", tiny_classifier, "--id-field", "id", "--max-length", 32
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


def test_truncated_gzip_names_the_file_and_writes_nothing(tmp_path, tiny_classifier, capsys, cli):
    data = gzip.compress(("some text on a line\n" * 5000).encode())
    bad = tmp_path / "cut.txt.gz"
    bad.write_bytes(data[: len(data) // 2])
    out = tmp_path / "out"
    assert cli.annotate(bad, "--output", out, "--model", tiny_classifier) == 2
    err = capsys.readouterr().err
    # One line, also though the file is read in a worker thread (Beam prints its traceback there).
    assert err.strip().splitlines() == [
        f"normxlogit annotate: error: {bad}: gzip data ends before its end-of-stream marker (truncated)"
    ]
    assert not (out / "manifest.json").exists()
    assert not list(out.rglob("*.parquet")) and not list(out.rglob("*.jsonl"))


def test_a_run_leaves_the_collector_as_it_found_it(tmp_path, tiny_classifier, cli):
    """The run freezes the heap for its duration (its workers' libraries and model are not walked
    by every full collection) and unfreezes it after, finished or failed: a caller that runs
    pipelines in its own process keeps a collector that frees its garbage."""
    good = tmp_path / "texts.txt"
    good.write_text("a first text\na second text\n")
    data = gzip.compress(("some text on a line\n" * 5000).encode())
    bad = tmp_path / "cut.txt.gz"
    bad.write_bytes(data[: len(data) // 2])
    before = gc.get_freeze_count()
    for source, code in ((good, 0), (bad, 2)):
        out = tmp_path / f"out-{source.stem}"
        assert cli.annotate(source, "--output", out, "--model", tiny_classifier) == code
        assert gc.get_freeze_count() == before


def test_pickle_weights_refused_unless_allowed(tmp_path, tiny_classifier, capsys, cli):
    folder = tmp_path / "pickled"
    model = transformers.AutoModelForSequenceClassification.from_pretrained(tiny_classifier)
    model.save_pretrained(folder)
    transformers.AutoTokenizer.from_pretrained(tiny_classifier).save_pretrained(folder)
    for weights in folder.glob("*.safetensors"):  # keep only a pickled state dict
        weights.unlink()
    torch.save(model.state_dict(), folder / "pytorch_model.bin")
    src = tmp_path / "x.txt"
    src.write_text("some text\n")
    assert cli.annotate(src, "--output", tmp_path / "o1", "--model", folder) == 2
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
def test_a_running_folder_is_refused_and_a_killed_run_is_cleared_with_overwrite(
    tmp_path, tiny_causal_lm, run_files, capsys, cli
):
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
    small = tmp_path / "small.txt"
    small.write_text("one\ntwo\nthree\n")
    marker = out / RUNNING_FILE
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not list(out.glob("attributions/beam-temp-*")):
            assert proc.poll() is None, "the run ended before it could be killed"
            time.sleep(0.2)
        assert marker.is_file()
        # A second run into the folder fails at once, naming the folder, the marker and the run.
        assert cli.annotate(small, "--output", out, "--model", tiny_causal_lm) == 2
        err = capsys.readouterr().err.strip()
        busy = f"{out} is being written by another run ({marker}: pid {proc.pid} on host "
        assert err.startswith(f"normxlogit annotate: error: {busy}")
        assert "\n" not in err and proc.poll() is None
        time.sleep(2)  # let it write some temporary Parquet
        assert proc.poll() is None
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    # What a killed run leaves: its marker and Beam's temporary files, never a manifest.
    assert not (out / "manifest.json").exists() and marker.is_file()
    assert not list(out.glob("attributions/part-*.parquet"))

    assert cli.annotate(small, "--output", out, "--model", tiny_causal_lm) == 2
    assert (
        f"holds an unfinished run that is no longer running ({marker}: pid {proc.pid}"
        in capsys.readouterr().err
    )
    args = ["annotate", str(small), "--output", str(out), "--model", str(tiny_causal_lm), "--overwrite"]
    assert main(args) == 0
    counts = run_files.manifest(out)["counts"]
    assert counts["records_read"] == counts["docs_annotated"] == 3
    assert not list(out.glob("attributions/beam-temp-*")) and not marker.exists()
    assert set(run_files.rows(out)["source"].to_pylist()) == {str(small)}


def test_offline_by_default():
    import normxlogit.loading  # noqa: F401  (sets the variable on import)

    assert os.environ.get("HF_HUB_OFFLINE") == "1"


def test_lone_surrogates_are_dead_letters_and_the_batch_is_annotated(
    tmp_path, tiny_classifier, run_files, capsys, cli
):
    src = tmp_path / "records.jsonl"
    src.write_text(
        "\n".join(
            [
                '{"id": "a", "text": "a good record", "label": "positive"}',
                '{"id": "b", "text": "lone \\ud800 surrogate", "label": "positive"}',
                '{"id": "c\\udc00d", "text": "a good text under a bad id", "label": "negative"}',
                '{"id": "c\\udc00d", "text": "the same bad id again", "label": "negative"}',
                '{"id": "e", "text": "a good text with a bad target", "label": "neg\\ud83dative"}',
                '{"id": "f", "text": "another good record", "label": "negative"}',
            ]
        )
        + "\n"
    )
    out = tmp_path / "out"
    assert (
        cli.annotate(
            src, "--output", out, "--model", tiny_classifier, "--id-field", "id", "--target-field", "label"
        )
        == 0
    )
    letters = {d["locator"]: d for d in run_files.dead_letters(out)}
    assert {loc: d["reason"] for loc, d in letters.items()} == {
        f"line {n}": "invalid_unicode" for n in (2, 3, 4, 5)
    }
    # Written as UTF-8 with the surrogate shown as its escape, never dropped or replaced.
    assert letters["line 3"]["doc_id"] == letters["line 4"]["doc_id"] == "c\\udc00d"
    assert "lone \\ud800 surrogate" in letters["line 2"]["excerpt"]
    assert "doc id holds a lone surrogate" in letters["line 3"]["message"]
    assert "target holds a lone surrogate" in letters["line 5"]["message"]
    rows = run_files.rows(out)
    assert sorted(set(rows["doc_id"].to_pylist())) == ["a", "f"]
    counts = run_files.manifest(out)["counts"]
    assert counts["records_read"] == 6 and counts["docs_annotated"] == 2 and counts["errors"] == 4
    assert not (out / RUNNING_FILE).exists()

    # A file whose name is not UTF-8 is refused before the run, in one line naming it.
    bad = tmp_path / os.fsdecode(b"bad\xff.txt")
    bad.write_text("some text\n")
    capsys.readouterr()
    assert cli.annotate(bad, "--output", tmp_path / "o2", "--model", tiny_classifier) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        f"normxlogit annotate: error: {tmp_path}/bad\\udcff.txt: the file name is not valid UTF-8 "
        "(escaped here); rename the file, or leave it out of the inputs"
    )
    assert not (tmp_path / "o2").exists()


def test_a_text_longer_than_the_character_cut_is_cut_and_flagged(
    tmp_path, tiny_classifier, run_files, monkeypatch, cli
):
    from normxlogit import tokenizing

    seen = []
    real = tokenizing.first_windows
    monkeypatch.setattr(
        tokenizing, "first_windows", lambda texts, *a: seen.extend(map(len, texts)) or real(texts, *a)
    )
    long = "a record that goes on " * 5000  # 110,000 characters
    src = tmp_path / "texts.txt"
    src.write_text(f"short text\n{long}\n")
    out = tmp_path / "out"
    assert cli.annotate(src, "--output", out, "--model", tiny_classifier, "--max-length", "32") == 0
    assert sorted(seen) == [len("short text"), tokenizing.max_chars(32)]  # the DirectRunner runs in-process
    rows = run_files.rows(out)
    cut = rows.filter(pa.compute.equal(rows["doc_id"], f"{src}#L2"))
    assert cut.num_rows == 32 and all(cut["truncated"].to_pylist())
    assert "".join(cut["token"].to_pylist()[1:5]) == "arecordthatgoes"
