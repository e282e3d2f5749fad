"""The summaries CombineFn and ``WriteSummaries`` on real annotated batches (tiny classifier)."""

from __future__ import annotations

import json
import pickle

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from apache_beam.testing.util import assert_that, equal_to

import normxlogit
from normxlogit.transforms.records import AnnotatedBatch
from normxlogit.transforms.summaries import SummaryStatsCombineFn, WriteSummaries
from normxlogit.transforms.summary_stats import batch_stats, histogram_bins, merge_stats, summarize_groups

TEXTS = [
    "A wonderful film.",
    "A dull, dull plot.",
    "Wonderful acting; dull ending.",
    "Unbelievably heartfelt — a wonderful, wonderful film!",
    "Dull.",
    "The plot was dull but the acting was wonderful.",
]
SPLITS = [(0, 2), (2, 5), (5, 5), (5, 6)]  # three batches and an empty one


def annotated_batch(results, texts: list[str], start: int) -> AnnotatedBatch:
    """One RunInference output: the token rows and document rows of ``results``."""
    ids = [f"d{start + i}" for i in range(len(results))]
    sources = [f"s{(start + i) % 2}.txt" for i in range(len(results))]
    schema = normxlogit.token_schema()
    parts = [normxlogit.to_record_batch(r, i, s) for r, i, s in zip(results, ids, sources)]
    rows = pa.Table.from_batches(parts, schema=schema).combine_chunks().to_batches()
    documents = pa.record_batch(
        {
            "doc_id": pa.array(ids, pa.string()),
            "source": pa.array(sources, pa.string()),
            "text": pa.array(texts, pa.string()),
            "n_tokens": pa.array([len(r.encoded) for r in results], pa.int32()),
            "truncated": pa.array([r.encoded.truncated for r in results], pa.bool_()),
            "target": pa.array([r.target for r in results], pa.string()),
            "prediction": pa.array([r.prediction for r in results], pa.string()),
            "prediction_prob": pa.array([r.attribution.prediction_prob for r in results], pa.float32()),
        }
    )
    return AnnotatedBatch(rows[0] if rows else pa.RecordBatch.from_pylist([], schema=schema), documents, [])


@pytest.fixture(scope="module")
def results(tiny_classifier):
    return normxlogit.score(normxlogit.load_model(str(tiny_classifier)), TEXTS)


@pytest.fixture(scope="module")
def batches(results) -> list[AnnotatedBatch]:
    return [annotated_batch(results[a:b], TEXTS[a:b], a) for a, b in SPLITS]


def rounded(value):
    """Floats to 12 significant digits: sums merged in another order may differ in the last bit."""
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [rounded(v) for v in value]
    return float(f"{value:.12g}") if isinstance(value, float) else value


def reference_vocab(results) -> dict[tuple[str, str, str], dict[str, list]]:
    """(kind, group, unit) -> text -> [total, count], document by document, token by token."""
    out: dict = {}
    for i, (text, r) in enumerate(zip(TEXTS, results)):
        enc, score = r.encoded, r.attribution.score.astype(np.float64)
        tokens, words, previous = [], [], None
        for j in range(len(enc)):
            if enc.special[j]:
                continue
            if enc.tokens[j].strip():
                tokens.append((enc.tokens[j].strip(), score[j]))
            if enc.word_index[j] < 0:
                continue
            if enc.word_index[j] == previous:
                words[-1] = (words[-1][0], enc.offsets[j, 1], words[-1][2] + score[j])
            else:
                words.append((enc.offsets[j, 0], enc.offsets[j, 1], score[j]))
            previous = enc.word_index[j]
        words = [(text[a:b].strip(), s) for a, b, s in words]
        groups = [
            ("corpus", ""),
            ("prediction", r.prediction),
            ("target", r.target),
            ("source", f"s{i % 2}.txt"),
        ]
        for key in groups:
            for unit, entries in (("word", words), ("token", tokens)):
                vocab = out.setdefault((*key, unit), {})
                for entry, s in entries:
                    vocab.setdefault(entry, [0.0, 0])
                    vocab[entry][0] += s
                    vocab[entry][1] += 1
    return out


def test_batch_stats_of_real_rows_equal_a_per_token_reference(batches, results):
    stats = merge_stats([batch_stats(b.rows, b.documents) for b in batches])
    got: dict = {}
    for row in stats.vocab.to_pylist():
        got.setdefault((row["kind"], row["group"], row["unit"]), {})[row["text"]] = [
            row["total"],
            row["count"],
        ]
    expected = reference_vocab(results)
    assert got.keys() == expected.keys()
    for key, vocab in expected.items():
        assert got[key] == {t: [pytest.approx(s, rel=1e-12), c] for t, (s, c) in vocab.items()}, key
    assert {"wonderful", "dull", "heartfelt", "—"} <= set(got["corpus", "", "word"])
    (corpus,) = stats.counts.filter(pc.equal(stats.counts["kind"], "corpus")).to_pylist()
    scores = np.concatenate([r.attribution.score[~r.encoded.special] for r in results])
    assert corpus["docs"] == len(TEXTS) and corpus["tokens"] == scores.size
    assert corpus["words"] == sum(c for _, c in expected["corpus", "", "word"].values())
    hist = stats.histogram.filter(pc.equal(stats.histogram["kind"], "corpus"))
    dense = np.bincount(histogram_bins(scores), minlength=max(hist["bin"].to_pylist()) + 1)
    assert dict(zip(hist["bin"].to_pylist(), hist["count"].to_pylist())) == {
        b: int(c) for b, c in enumerate(dense) if c
    }


def test_each_batch_feeds_its_groups(batches, results):
    counts = batch_stats(batches[1].rows, batches[1].documents).counts
    keys = list(zip(counts["kind"].to_pylist(), counts["group"].to_pylist()))
    expected = {("corpus", ""), ("source", "s0.txt"), ("source", "s1.txt")}
    expected |= {("prediction", r.prediction) for r in results[2:5]} | {
        ("target", r.target) for r in results[2:5]
    }
    assert sorted(keys) == sorted(expected)
    assert batch_stats(batches[2].rows, batches[2].documents).counts.num_rows == 0  # the empty batch


def test_combine_fn_buffers_partials_and_merges_them(batches):
    fn = SummaryStatsCombineFn(capacity=10**6)
    parts = [batch_stats(b.rows, b.documents) for b in batches]
    accumulator = fn.create_accumulator()
    for part in parts:
        accumulator = fn.add_input(accumulator, part)
    assert len(accumulator) == len(parts)  # far below 2 * capacity rows: nothing merged yet
    (compacted,) = fn.compact(pickle.loads(pickle.dumps(accumulator)))
    merged = fn.extract_output(fn.merge_accumulators([[parts[2]], [compacted], fn.create_accumulator()]))
    merged_again = summarize_groups(merge_stats(parts + [parts[2]]))
    assert rounded(summarize_groups(merged)) == rounded(merged_again)

    small = SummaryStatsCombineFn(capacity=3)
    accumulator = small.create_accumulator()
    for part in parts:
        accumulator = small.add_input(accumulator, part)
        assert len(accumulator) <= 2  # a batch of words reaches 2 * capacity: merged at once
    stats = small.extract_output(accumulator)
    (corpus,) = [group for group in summarize_groups(stats) if group["kind"] == "corpus"]
    assert (corpus["docs"], corpus["tokens"]) == (
        len(TEXTS),
        sum(row["tokens"] for p in parts for row in p.counts.to_pylist() if row["kind"] == "corpus"),
    )
    units = stats.vocab.group_by(["kind", "group", "unit"]).aggregate([([], "count_all")])
    assert max(units["count_all"].to_pylist()) < 2 * 3  # pruned to the capacity


def test_write_summaries_one_line_per_group(batches, tmp_path):
    with beam.Pipeline() as p:
        files = p | beam.Create(batches) | WriteSummaries(str(tmp_path), top_k=2)
        assert_that(files, equal_to([str(tmp_path / "summaries" / "groups.jsonl")]))
    lines = (tmp_path / "summaries" / "groups.jsonl").read_text(encoding="utf-8").splitlines()
    groups = [json.loads(line) for line in lines]
    expected = summarize_groups(merge_stats([batch_stats(b.rows, b.documents) for b in batches]), k=2)
    assert sorted(rounded(groups), key=lambda g: (g["kind"], g["group"])) == rounded(expected)
    corpus = next(g for g in groups if g["kind"] == "corpus")
    assert corpus["docs"] == len(TEXTS) and len(corpus["top_words_by_total"]) == 2
    assert {g["group"] for g in groups if g["kind"] == "source"} == {"s0.txt", "s1.txt"}
    assert sum(g["docs"] for g in groups if g["kind"] == "prediction") == len(TEXTS)
    assert lines == [json.dumps(g, ensure_ascii=False, sort_keys=True) for g in groups]


def test_nothing_annotated_writes_no_file(batches, tmp_path):
    with beam.Pipeline() as p:
        _ = p | beam.Create([batches[2]]) | WriteSummaries(str(tmp_path))
    assert not (tmp_path / "summaries" / "groups.jsonl").exists()
