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
    AnnotateOptionsSection,
    AnnotateSections,
    Batching,
    EvaluateCounts,
    EvaluateSections,
    FaithfulnessSection,
    Manifest,
    OutputFiles,
    ResponseFaithfulnessSection,
    RunDescription,
    RunHeader,
    RunNotFoundError,
    TargetSection,
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
        "response_field": None,
        "messages_field": None,
        "max_new_tokens": None,
        "step_scores": False,
        "chat_template": False,
        "system_prompt": None,
        "no_default_system_prompt": False,
        "system_prompt_variable": None,
    },
    "options": {
        "text_field": "text",
        "id_field": None,
        "max_length": None,
        "batch_tokens": 8192,
        "docs_per_batch": 2048,
        "layers": [],
        "keep_fields": ["lang"],
        "device": "cpu",
        "dtype": "float32",
        "padding_side": None,
        "model_copies": None,
        "large_model": False,
        "include_template": False,
    },
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
# evaluate's own sections, as it writes them (a labelled corpus; a response run).
EVALUATE_OPTIONS = {
    "text_field": "text",
    "id_field": "id",
    "max_length": 128,
    "batch_tokens": 8192,
    "docs_per_batch": 32,
    "device": "cpu",
    "dtype": "float32",
}
FAITHFULNESS = {
    "methods": ["normxlogit", "random"],
    "seed": 0,
    "ig_steps": 50,
    "k_percents": [10, 20],
    "replacement_token": "[MASK]",
    "target": "prediction",
    "label_field": "label",
    "random_seeds": 3,
    "bootstrap": 1000,
    "loo_max_tokens": 256,
}
RESPONSE_FAITHFULNESS = {
    "mode": "response",
    "methods": ["normxlogit"],
    "seed": 1,
    "k_percents": [10, 20],
    "replacement_token": "<unk>",
    "response_source": "generate",
    "response_field": None,
    "messages_field": None,
    "generate": 16,
    "system_prompt": None,
    "no_default_system_prompt": False,
    "random_seeds": 3,
    "bootstrap": 1000,
}


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
    assert isinstance(manifest.sections, AnnotateSections)
    assert list(manifest.sections.to_dict()) == ["target", "options", "versions"]
    assert manifest.sections.target == TargetSection("prediction")
    assert manifest.sections.options.keep_fields == ("lang",)
    assert manifest.to_json() == text


def test_evaluate_manifest_keeps_its_counts_and_file_kinds():
    body = {**ANNOTATE_JSON, "command": "evaluate", "counts": EVALUATE_COUNTS}
    body["files"] = {"results": ["summary.json"], "errors": []}
    del body["batching"]
    manifest = Manifest.from_dict(body)
    assert manifest.counts == EvaluateCounts(10, 3, 1, 6) and manifest.counts.reconciles
    assert manifest.to_dict() == body and list(manifest.to_dict()["files"]) == ["results", "errors"]


@pytest.mark.parametrize("faithfulness", [FAITHFULNESS, RESPONSE_FAITHFULNESS])
def test_evaluate_sections_round_trip_byte_for_byte(faithfulness):
    header = {
        key: ANNOTATE_JSON[key]
        for key in ("start_time", "inputs", "input_files", "output", "runner", "model")
    }
    body = {
        "command": "evaluate",
        **header,
        "faithfulness": faithfulness,
        "options": EVALUATE_OPTIONS,
        "versions": ANNOTATE_JSON["versions"],
        "end_time": ANNOTATE_JSON["end_time"],
        "counts": EVALUATE_COUNTS,
        "files": {"results": ["summary.json"], "errors": []},
    }
    text = json.dumps(body, indent=2)
    manifest = Manifest.from_json(text)
    kind = FaithfulnessSection if faithfulness is FAITHFULNESS else ResponseFaithfulnessSection
    assert isinstance(manifest.sections, EvaluateSections)
    assert isinstance(manifest.sections.faithfulness, kind)
    assert manifest.sections.faithfulness.k_percents == (10, 20)
    assert manifest.sections.options.docs_per_batch == 32
    assert manifest.to_json() == text


@pytest.mark.parametrize("faithfulness", [FAITHFULNESS, RESPONSE_FAITHFULNESS])
def test_evaluate_runs_before_intervals_read_with_one_random_seed(faithfulness):
    older = {
        k: v for k, v in faithfulness.items() if k not in ("random_seeds", "bootstrap", "loo_max_tokens")
    }
    section = EvaluateSections.from_dict({"faithfulness": older}).faithfulness
    assert (section.random_seeds, section.bootstrap) == (1, None)
    assert getattr(section, "loo_max_tokens", None) is None  # runs before ferret's metrics


def test_target_section_says_whether_it_is_contrastive():
    assert TargetSection("fixed", target="pos", foil="neg").to_dict()["contrastive"] is True
    assert TargetSection("prediction").contrastive is False
    assert TargetSection.from_dict({"mode": "fixed", "foil": "neg", "contrastive": False}).contrastive


def test_sections_older_runs_lack_take_their_defaults():
    sections = AnnotateSections.from_dict({"target": {"mode": "field", "target_field": "label"}})
    assert sections.target == TargetSection("field", target_field="label")
    assert sections.options == AnnotateOptionsSection() and sections.versions == {}


def test_a_manifest_names_one_command_by_its_sections():
    body = {**ANNOTATE_JSON, "faithfulness": FAITHFULNESS}
    with pytest.raises(ValueError, match="exactly one of the sections target, faithfulness"):
        Manifest.from_dict(body)
    with pytest.raises(KeyError):
        AnnotateSections.from_dict({"options": {}})
    with pytest.raises(TypeError):
        TargetSection.from_dict({"target": "pos"})


def test_a_finished_description_is_written_in_manifest_order():
    header = RunHeader("annotate", None, ("in",), 1, "out", "DirectRunner", {"path": None})
    files = OutputFiles.of({"errors": ["errors/b", "errors/a"], "attributions": []})
    manifest = RunDescription(header, AnnotateSections(TargetSection("fixed"))).finished(
        AnnotateCounts(1, 1, 0, 0, 7),
        files,
        end_time=datetime.datetime(2025, 1, 1, tzinfo=datetime.timezone.utc),
        batching=Batching.of(tokens=7, padded_tokens=10),
    )
    body = manifest.to_dict()
    assert list(body) == [
        "command", "start_time", "inputs", "input_files", "output", "runner", "model",
        "target", "options", "versions", "batching", "end_time", "counts", "files",
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
