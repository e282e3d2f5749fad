"""Repeated ids in batches: the first occurrence by (source, line) is kept, repeats are dead letters."""

from __future__ import annotations

import apache_beam as beam
from apache_beam.testing.util import assert_that, equal_to

from normxlogit.transforms.dedupe import DUPLICATES, DropRepeats, FindRepeatedIds, _FirstOccurrencesFn
from normxlogit.transforms.records import (
    RecordBatch,
    RecordBatchCoder,
    SourceRecord,
    pack_records,
    unpack_records,
)
from normxlogit.transforms.sources import MISSING


def _record(source: str, line: int, doc_id: str) -> SourceRecord:
    return SourceRecord(source, f"line {line}", doc_id, f"text of {doc_id} at {source}:{line}")


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
            equal_to([("a", ("b.jsonl", "line 9")), ("x", ("a.jsonl", "line 5"))]),
            label="Repeated",
        )
        out = pc | beam.ParDo(DropRepeats(), beam.pvalue.AsDict(repeated)).with_outputs(
            DUPLICATES, main="kept"
        )
        kept = out.kept | "Kept" >> beam.FlatMap(lambda batch: [(r.source, r.locator) for r in batch])
        assert_that(
            kept,
            equal_to(
                [("b.jsonl", "line 11"), ("b.jsonl", "line 9"), ("a.jsonl", "line 5"), ("c.jsonl", "line 3")]
            ),
            label="KeptRecords",
        )
        dead = out[DUPLICATES] | beam.Map(lambda d: (d.source, d.locator, d.reason, d.message))
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
    left = fn.add_input(fn.create_accumulator(), [("a", "s", "line 12"), ("b", "s", "line 1")])
    right = fn.add_input(fn.create_accumulator(), [("a", "s", "line 3"), ("c", "t", "row 2")])
    merged = fn.merge_accumulators([left, right, fn.create_accumulator()])
    assert fn.extract_output(merged) == [("a", ("s", "line 3"))]


def test_packed_batches_keep_every_field():
    records = [
        SourceRecord("s", "line 1", "a", "bad \ud800 text", MISSING, "raw", ("k", None), {"x": [1]}, None),
        SourceRecord("s", "row 2", "b", None),
    ]
    back = unpack_records(pack_records(records))
    assert back == records and back[0].target is MISSING


def test_record_batches_travel_with_their_own_coder():
    """A batch is one packed value to the runner, and its size is estimated without packing it
    (Beam estimates the first elements of every step; pickling a batch each time cost ~10 ms)."""
    coder = beam.coders.registry.get_coder(RecordBatch)
    assert isinstance(coder, RecordBatchCoder)
    batch = RecordBatch(
        [
            SourceRecord("s", "line 1", "a", "bad \ud800 text", MISSING, '{"text": "bad \\ud800 text"}'),
            *(_record("t.jsonl", n, f"id{n}") for n in range(2, 200)),
        ]
    )
    back = coder.decode(coder.encode(batch))
    assert isinstance(back, RecordBatch) and back == batch and back[0].target is MISSING
    assert coder.encode(batch) == pack_records(batch)
    # without packing: a batch whose records hold no raw line still gets a size from the constant
    packed = len(coder.encode(batch))
    assert packed / 4 < coder.estimate_size(batch) < packed * 4
