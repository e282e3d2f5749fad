"""``transforms/layout.py``: the names of a run's files and the manifest as typed values."""

from __future__ import annotations

import datetime
import json
import subprocess
import sys

import pytest

from normxlogit.transforms.layout import (
    ATTRIBUTIONS,
    ERRORS,
    GROUPS,
    MANIFEST_FILE,
    AnnotateCounts,
    Batching,
    EvaluateCounts,
    Manifest,
    OutputFiles,
    RunDescription,
    RunHeader,
    RunNotFoundError,
    read_manifest,
)

# A manifest as `annotate` writes it, keys in its order.
ANNOTATE_JSON = {
    "command": "annotate",
    "start_time": "2025-05-01T10:00:00.123456+00:00",
    "inputs": ["/data/in.jsonl"],
    "input_files": 1,
    "output": "/data/out",
    "runner": "DirectRunner",
    "model": {"path": "/m", "architecture": "BertForSequenceClassification", "labels": {"0": "neg"}},
    "target": {
        "mode": "prediction",
        "target": None,
        "target_field": None,
        "foil": None,
        "contrastive": False,
    },
    "options": {"text_field": "text", "layers": []},
    "versions": {"python": "3.11.7"},
    "batching": {"padded_tokens": 120, "padding_ratio": 1.2},
    "end_time": "2025-05-01T10:01:00+00:00",
    "counts": {"records_read": 5, "docs_annotated": 3, "skipped_empty": 1, "errors": 1, "tokens": 100},
    "files": {
        "attributions": ["attributions/part-00000-of-00001.parquet"],
        "errors": ["errors/part-00000-of-00001.jsonl"],
        "summaries": ["summaries/groups.jsonl"],
    },
}
EVALUATE_COUNTS = {"records_read": 10, "docs_evaluated": 3, "skipped_empty": 1, "errors": 6}


def test_file_names_are_the_ones_beam_sinks_write():
    assert ATTRIBUTIONS.name(0, 1) == "attributions/part-00000-of-00001.parquet"
    assert ERRORS.name(2, 12) == "errors/part-00002-of-00012.jsonl"
    assert GROUPS.name == "summaries/groups.jsonl"
    assert MANIFEST_FILE == "manifest.json"


def test_parts_are_listed_in_shard_order_and_nothing_else(tmp_path):
    (tmp_path / "attributions").mkdir()
    for name in ("part-00001-of-00002.parquet", "part-00000-of-00002.parquet", "notes.parquet", "x.jsonl"):
        (tmp_path / "attributions" / name).touch()
    assert [p.name for p in ATTRIBUTIONS.paths(tmp_path)] == [
        "part-00000-of-00002.parquet",
        "part-00001-of-00002.parquet",
    ]
    assert ERRORS.paths(tmp_path) == []


def test_manifest_round_trips_byte_for_byte():
    text = json.dumps(ANNOTATE_JSON, indent=2)
    manifest = Manifest.from_json(text)
    assert manifest.counts == AnnotateCounts(5, 3, 1, 1, 100) and manifest.counts.reconciles
    assert manifest.batching == Batching(120, 1.2)
    assert manifest.header.start_time == datetime.datetime(
        2025, 5, 1, 10, 0, 0, 123456, datetime.timezone.utc
    )
    assert manifest.files.attributions == ("attributions/part-00000-of-00001.parquet",)
    assert list(manifest.sections) == ["target", "options", "versions"]
    assert manifest.to_json() == text


def test_evaluate_manifest_keeps_its_counts_and_file_kinds():
    body = {**ANNOTATE_JSON, "command": "evaluate", "counts": EVALUATE_COUNTS}
    body["files"] = {"results": ["summary.json"], "errors": []}
    del body["batching"]
    manifest = Manifest.from_dict(body)
    assert manifest.counts == EvaluateCounts(10, 3, 1, 6) and manifest.counts.reconciles
    assert manifest.to_dict() == body and list(manifest.to_dict()["files"]) == ["results", "errors"]


def test_a_finished_description_is_written_in_manifest_order():
    header = RunHeader("annotate", None, ("in",), 1, "out", "DirectRunner", {"path": None})
    files = OutputFiles.of({"errors": ["errors/b", "errors/a"], "attributions": []})
    manifest = RunDescription(header, {"target": {"mode": "fixed"}}).finished(
        AnnotateCounts(1, 1, 0, 0, 7),
        files,
        end_time=datetime.datetime(2025, 1, 1, tzinfo=datetime.timezone.utc),
        batching=Batching.of(tokens=7, padded_tokens=10),
    )
    body = manifest.to_dict()
    assert list(body) == [
        "command", "start_time", "inputs", "input_files", "output", "runner", "model",
        "target", "batching", "end_time", "counts", "files",
    ]  # fmt: skip
    assert body["batching"] == {"padded_tokens": 10, "padding_ratio": 1.4286}
    assert body["files"] == {"attributions": [], "errors": ["errors/a", "errors/b"]}
    assert list(body["counts"]) == ["records_read", "docs_annotated", "skipped_empty", "errors", "tokens"]
    assert Batching.of(tokens=0, padded_tokens=0).padding_ratio is None


def test_unknown_output_kind_is_refused():
    with pytest.raises(ValueError, match="unknown output kinds"):
        OutputFiles.of({"attributions": [], "tokens": []})


def test_read_manifest_says_what_is_wrong(tmp_path):
    with pytest.raises(RunNotFoundError, match="not a finished normxlogit run .no manifest.json."):
        read_manifest(tmp_path)
    (tmp_path / MANIFEST_FILE).write_text("{not json")
    with pytest.raises(RunNotFoundError, match="is not a normxlogit manifest .JSONDecodeError"):
        read_manifest(tmp_path)
    (tmp_path / MANIFEST_FILE).write_text(json.dumps({**ANNOTATE_JSON, "counts": {"records_read": 1}}))
    with pytest.raises(
        RunNotFoundError, match="counts must name exactly one of docs_annotated, docs_evaluated"
    ):
        read_manifest(tmp_path)
    (tmp_path / MANIFEST_FILE).write_text(json.dumps(ANNOTATE_JSON))
    assert read_manifest(tmp_path).counts.tokens == 100


def test_layout_imports_neither_beam_nor_torch():
    probe = (
        "import sys, normxlogit.transforms.layout; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'transformers', 'apache_beam')))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
