"""End-to-end tests of ``normxlogit annotate`` through the console entry point (DirectRunner)."""

from __future__ import annotations

import bz2
import csv
import gzip
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

import normxlogit
from normxlogit.scoring import plan_batches

REPO = Path(__file__).resolve().parents[2]
REVIEWS = [
    {"id": "r1", "text": "A wonderful, heartfelt film with great acting.", "label": "positive"},
    {"id": "r2", "text": "Dull plot and wooden dialogue; I left early.", "label": "negative"},
    {"id": "r3", "text": "Not bad at all.", "label": "positive"},
    {
        "id": "r4",
        "text": "The soundtrack alone is worth the ticket, even if the ending drags on for far too long.",
        "label": 0,
    },
]


def test_classifier_target_from_record_field(tmp_path, tiny_classifier, run_files, cli):
    src = tmp_path / "reviews.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in REVIEWS))
    out = tmp_path / "out"
    assert (
        cli.annotate(
            src, "--output", out, "--model", tiny_classifier, "--id-field", "id", "--target-field", "label"
        )
        == 0
    )

    manifest = run_files.manifest(out)
    assert manifest["counts"] == {
        "records_read": 4,
        "docs_annotated": 4,
        "skipped_empty": 0,
        "errors": 0,
        "tokens": manifest["counts"]["tokens"],
    }
    assert manifest["target"]["mode"] == "field"
    rows = run_files.rows(out)
    assert manifest["counts"]["tokens"] == rows.num_rows
    assert rows.schema.equals(normxlogit.token_schema(), check_metadata=False)
    per_doc = {d: t for d, t in zip(rows["doc_id"].to_pylist(), rows["target"].to_pylist())}
    assert per_doc == {"r1": "positive", "r2": "negative", "r3": "positive", "r4": "negative"}

    # The pipeline's scores equal the Python API's on the same texts and targets.
    sm = normxlogit.load_model(tiny_classifier)
    api = normxlogit.score(sm, [r["text"] for r in REVIEWS], targets=[r["label"] for r in REVIEWS])
    for review, expected in zip(REVIEWS, api):
        doc = rows.filter(pa.compute.equal(rows["doc_id"], review["id"])).sort_by("position")
        np.testing.assert_allclose(doc["score"].to_numpy(), expected.scores, rtol=1e-5, atol=1e-6)
        assert doc["token"].to_pylist() == expected.tokens


def test_manifest_counts_the_padded_positions_of_the_forward_passes(
    tmp_path, tiny_classifier, run_files, cli
):
    """``batching.padded_tokens`` is what the length-bucketed forward passes really ran."""
    texts = [r["text"] for r in REVIEWS] + ["short", "a somewhat longer review of a film", "ok"] * 5
    src = tmp_path / "mixed.jsonl"
    src.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    out = tmp_path / "out"
    assert cli.annotate(src, "--output", out, "--model", tiny_classifier, "--batch-tokens", "64") == 0

    manifest = run_files.manifest(out)
    rows = run_files.rows(out)
    lengths = [n for _, n in sorted(Counter(rows["doc_id"].to_pylist()).items())]
    plan = plan_batches(lengths, 64)
    expected = sum(len(batch) * max(lengths[i] for i in batch) for batch in plan)
    assert len(plan) > 3  # the budget and the padding cap really cut the corpus into several passes
    assert manifest["batching"] == {
        "padded_tokens": expected,
        "padding_ratio": round(expected / rows.num_rows, 4),
    }
    assert rows.num_rows == manifest["counts"]["tokens"] <= expected


def _write_inputs(folder: Path) -> dict[str, list[str]]:
    """One small file per format and compression; returns the expected texts per file."""
    texts = ["first line of text", "second, a little longer line of text", "third"]
    expected = {}
    (folder / "a.txt").write_text("\n".join(texts) + "\n")
    expected["a.txt"] = texts
    jsonl = "".join(json.dumps({"text": t, "n": i}) + "\n" for i, t in enumerate(texts))
    (folder / "b.jsonl.gz").write_bytes(gzip.compress(jsonl.encode()))
    expected["b.jsonl.gz"] = texts
    (folder / "c.txt.bz2").write_bytes(bz2.compress("\n".join(texts).encode()))
    expected["c.txt.bz2"] = texts
    (folder / "d.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(jsonl.encode()))
    expected["d.jsonl.zst"] = texts
    pq.write_table(pa.table({"text": texts}), folder / "e.parquet")
    expected["e.parquet"] = texts
    with open(folder / "f.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "other"])
        writer.writerows([[t, "x"] for t in texts])
    expected["f.csv"] = texts
    return expected


def test_every_format_and_compression(tmp_path, tiny_causal_lm, run_files, cli):
    inputs = tmp_path / "in"
    inputs.mkdir()
    expected = _write_inputs(inputs)
    import datasets

    datasets.Dataset.from_dict({"text": ["from a saved dataset", "row two"]}).save_to_disk(
        str(tmp_path / "hf")
    )
    out = tmp_path / "out"
    assert cli.annotate(inputs, tmp_path / "hf", "--output", out, "--model", tiny_causal_lm) == 0

    manifest = run_files.manifest(out)
    n_records = sum(len(v) for v in expected.values()) + 2
    counts = manifest["counts"]
    assert counts["records_read"] == n_records == counts["docs_annotated"]
    assert counts["errors"] == counts["skipped_empty"] == 0
    rows = run_files.rows(out)
    docs = rows.group_by(["doc_id", "source"]).aggregate([("position", "count")])
    ids = docs["doc_id"].to_pylist()
    assert len(set(ids)) == n_records, "ids must be unique across inputs"
    sources = {Path(s).name for s in docs["source"].to_pylist()}
    assert set(expected) <= sources
    for doc_id, source in zip(ids, docs["source"].to_pylist()):
        assert doc_id.startswith(source), (doc_id, source)
        assert doc_id.rsplit("#", 1)[1][0] in "LR"
    # Line formats are located by line, row formats by row, 1-based.
    assert f"{inputs / 'a.txt'}#L1" in ids and f"{inputs / 'e.parquet'}#R3" in ids


def test_refuses_finished_run_and_missing_input(tmp_path, tiny_classifier, capsys, cli):
    src = tmp_path / "x.txt"
    src.write_text("one\ntwo\n")
    out = tmp_path / "out"
    assert cli.annotate(src, "--output", out, "--model", tiny_classifier) == 0
    assert cli.annotate(src, "--output", out, "--model", tiny_classifier) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert cli.annotate(src, "--output", out, "--model", tiny_classifier, "--overwrite") == 0
    assert (
        cli.annotate(tmp_path / "nope*.jsonl", "--output", tmp_path / "o2", "--model", tiny_classifier) == 2
    )
    assert "nope" in capsys.readouterr().err


def test_beam_flags_pass_through_anywhere(tmp_path, tiny_classifier, run_files, cli):
    src = tmp_path / "x.txt"
    src.write_text("one\ntwo\n")
    out = tmp_path / "out"
    assert (
        cli.annotate(
            "--runner",
            "DirectRunner",
            src,
            "--output",
            out,
            "--model",
            tiny_classifier,
            "--direct_num_workers",
            1,
        )
        == 0
    )
    assert run_files.manifest(out)["runner"] == "DirectRunner"


@pytest.mark.slow
def test_default_model_on_the_demo_corpus(tmp_path, run_files, cli):
    """The embedded SmolLM2 over the shipped demo corpus: counts, schema, ' Paris', API parity."""
    news, prompts = REPO / "data/demo/news.jsonl", REPO / "data/demo/prompts.txt"
    out = tmp_path / "out"
    assert cli.annotate(news, prompts, "--id-field", "id", "--output", out) == 0

    manifest = run_files.manifest(out)
    n_news = len(news.read_text().splitlines())
    prompt_lines = prompts.read_text().splitlines()
    counts = manifest["counts"]
    assert counts["records_read"] == n_news + len(prompt_lines)
    assert counts["records_read"] == counts["docs_annotated"] + counts["skipped_empty"] + counts["errors"]
    assert counts["errors"] == 0
    assert manifest["model"]["architecture"] == "LlamaForCausalLM"
    assert len(manifest["model"]["weights_sha256"]) == 64
    rows = run_files.rows(out)
    assert rows.num_rows == counts["tokens"]
    assert rows.schema.equals(normxlogit.token_schema(), check_metadata=False)

    paris_id = f"{prompts}#L1"
    doc = rows.filter(pa.compute.equal(rows["doc_id"], paris_id)).sort_by("position")
    assert doc["prediction"][0].as_py() == " Paris"
    api = normxlogit.score(None, [prompt_lines[0]])[0]
    np.testing.assert_allclose(doc["score"].to_numpy(), api.scores, rtol=1e-4, atol=1e-5)


def test_every_batch_step_of_the_front_is_a_record_batch(tmp_path):
    """From the reader to the model step, every PCollection of records is typed ``RecordBatch``, so
    Beam moves (the shuffle included) and measures each batch with ``RecordBatchCoder`` (packed
    once, size estimated without packing), never with its generic pickling coder."""
    import apache_beam as beam

    from normxlogit.pipeline.stages import read_valid_batches
    from normxlogit.transforms.records import RecordBatch
    from normxlogit.transforms.sources import FieldSpec, ReadRecords

    src = tmp_path / "reviews.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in REVIEWS))
    fields = FieldSpec(id_field="id")
    p = beam.Pipeline()
    front = read_valid_batches(p, ReadRecords([str(src)], fields), fields, batch_size=2)
    steps = {}

    class MainOutputs(beam.pipeline.PipelineVisitor):
        def visit_transform(self, node):
            if None in node.outputs:
                steps[node.full_label] = node.outputs[None].element_type

    p.visit(MainOutputs())
    batch_steps = [
        "Read/ReadFiles/ParDo(ReadFileBatchesFn)",
        "ValidateIds/ParDo(CheckBatchIds)",
        "SpreadBatches/RemoveRandomKeys",
        "DropRepeats/ParDo(DropRepeats)",
        "Validate/ParDo(ValidateTextBatch)",
    ]
    assert [steps[name] for name in batch_steps] == [RecordBatch] * len(batch_steps)
    assert steps["SpreadBatches/AddRandomKeys"] == beam.typehints.Tuple[int, RecordBatch]
    assert front.valid.element_type is RecordBatch
