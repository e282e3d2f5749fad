"""The summaries CombineFn and ``WriteSummaries`` on real scored documents (tiny classifier)."""

from __future__ import annotations

import json

import apache_beam as beam
import pytest
from apache_beam.testing.util import assert_that, equal_to

import normxlogit
from normxlogit.transforms.model_handler import ScoredDoc
from normxlogit.transforms.records import SourceRecord
from normxlogit.transforms.summaries import GroupStatsCombineFn, WriteSummaries, keyed_contributions

TEXTS = ["A wonderful film.", "A dull, dull plot.", "Wonderful acting; dull ending."]


@pytest.fixture(scope="module")
def scored_docs(tiny_classifier) -> list[ScoredDoc]:
    model = normxlogit.load_model(str(tiny_classifier))
    results = normxlogit.score(model, TEXTS)
    return [
        ScoredDoc(SourceRecord(source=f"s{i % 2}.txt", locator=f"line {i}", doc_id=f"d{i}", text=t), result=r)
        for i, (t, r) in enumerate(zip(TEXTS, results))
    ]


def test_each_doc_feeds_its_four_groups(scored_docs):
    keys = [key for key, _ in keyed_contributions(scored_docs[1])]
    res = scored_docs[1].result
    assert keys == [
        ("corpus", ""),
        ("prediction", res.prediction),
        ("target", res.target),
        ("source", "s1.txt"),
    ]
    _, contribution = next(keyed_contributions(scored_docs[1]))
    assert contribution.words == ["A", "dull", ",", "dull", "plot", "."]


def test_combine_fn_merge_equals_sequential_adds(scored_docs):
    fn = GroupStatsCombineFn(capacity=3)
    docs = [c for d in scored_docs for key, c in keyed_contributions(d) if key[0] == "corpus"]
    sequential = fn.create_accumulator()
    for doc in docs:
        sequential = fn.add_input(sequential, doc)
    parts = [fn.add_input(fn.create_accumulator(), doc) for doc in docs]
    merged = fn.extract_output(fn.merge_accumulators(parts))
    assert (merged.docs, merged.tokens, merged.words) == (
        sequential.docs,
        sequential.tokens,
        sequential.words,
    )
    assert (merged.histogram == sequential.histogram).all()
    assert merged.word_totals["dull"][1] == 3  # frequent words survive the capacity of 3
    assert len(merged.word_totals) < 2 * 3


def test_write_summaries_one_line_per_group(scored_docs, tmp_path):
    with beam.Pipeline() as p:
        files = p | beam.Create(scored_docs) | WriteSummaries(str(tmp_path), top_k=2)
        assert_that(files, equal_to([str(tmp_path / "summaries" / "groups.jsonl")]))
    groups = [json.loads(line) for line in (tmp_path / "summaries" / "groups.jsonl").read_text().splitlines()]
    corpus = next(g for g in groups if g["kind"] == "corpus")
    assert corpus["docs"] == 3 and len(corpus["top_words_by_total"]) == 2
    assert {g["group"] for g in groups if g["kind"] == "source"} == {"s0.txt", "s1.txt"}
    assert sum(g["docs"] for g in groups if g["kind"] == "prediction") == 3
