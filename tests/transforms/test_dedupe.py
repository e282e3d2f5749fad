"""Repeated ids in batches: the first occurrence by (source, line) is kept, repeats are dead letters."""

from __future__ import annotations

import apache_beam as beam
from apache_beam.testing.util import assert_that, equal_to

from normxlogit.transforms.dedupe import DUPLICATES, DropRepeats, FindRepeatedIds, _FirstOccurrencesFn
from normxlogit.transforms.records import Locator, SourceRecord


def _record(source: str, line: int, doc_id: str) -> SourceRecord:
    return SourceRecord(source, Locator.line(line), doc_id, f"text of {doc_id} at {source}:{line}")


def test_repeats_are_dropped_whatever_the_order_and_batching():
    # "a" first occurs at b.jsonl line 9, which comes before line 10 (numbers, not strings), and
    # a.jsonl sorts before b.jsonl; the batches arrive in an order that shows neither first.
    batches = [
        [_record("b.jsonl", 10, "a"), _record("b.jsonl", 11, "solo")],
        [_record("c.jsonl", 1, "a"), _record("b.jsonl", 9, "a")],
        [_record("c.jsonl", 2, "x"), _record("a.jsonl", 5, "x"), _record("c.jsonl", 3, "y")],
    ]
    with beam.Pipeline() as p:
        pc = p | beam.Create(batches)
        repeated = pc | FindRepeatedIds()
        assert_that(
            repeated,
            equal_to([("a", ("b.jsonl", Locator.line(9))), ("x", ("a.jsonl", Locator.line(5)))]),
            label="Repeated",
        )
        out = pc | beam.ParDo(DropRepeats(), beam.pvalue.AsDict(repeated)).with_outputs(
            DUPLICATES, main="kept"
        )
        kept = out.kept | "Kept" >> beam.FlatMap(lambda batch: [(r.source, str(r.locator)) for r in batch])
        assert_that(
            kept,
            equal_to(
                [("b.jsonl", "line 11"), ("b.jsonl", "line 9"), ("a.jsonl", "line 5"), ("c.jsonl", "line 3")]
            ),
            label="KeptRecords",
        )
        dead = out[DUPLICATES] | beam.Map(lambda d: (d.source, str(d.locator), d.reason, d.message))
        message = "doc id {!r} was already used by {} ({}); repeats are not annotated"
        assert_that(
            dead,
            equal_to(
                [
                    ("b.jsonl", "line 10", "duplicate_id", message.format("a", "b.jsonl", "line 9")),
                    ("c.jsonl", "line 1", "duplicate_id", message.format("a", "b.jsonl", "line 9")),
                    ("c.jsonl", "line 2", "duplicate_id", message.format("x", "a.jsonl", "line 5")),
                ]
            ),
            label="Duplicates",
        )


def test_first_occurrences_merge_across_accumulators():
    fn = _FirstOccurrencesFn()
    line, row = Locator.line, Locator.row
    left = fn.add_input(fn.create_accumulator(), [("a", "s", line(12)), ("b", "s", line(1))])
    right = fn.add_input(fn.create_accumulator(), [("a", "s", line(3)), ("c", "t", row(2))])
    merged = fn.merge_accumulators([left, right, fn.create_accumulator()])
    assert fn.extract_output(merged) == [("a", ("s", line(3)))]
