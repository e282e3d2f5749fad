"""Typed values between transforms: locators, packed record batches, dead letters as JSON lines."""

from __future__ import annotations

import json
import pickle

import apache_beam as beam

from normxlogit.transforms.records import (
    DeadLetter,
    Locator,
    RecordBatch,
    RecordBatchCoder,
    SourceRecord,
    pack_records,
    unpack_records,
)
from normxlogit.transforms.sources import MISSING


def test_a_locator_is_written_as_kind_and_number_and_derives_the_doc_id():
    assert (str(Locator.line(3)), str(Locator.row(12))) == ("line 3", "row 12")
    assert Locator.line(3) == Locator("line", 3) != Locator.row(3)
    assert Locator.line(3).derived_id("s3://b/k.jsonl") == "s3://b/k.jsonl#L3"
    assert Locator.row(7).derived_id("a.csv") == "a.csv#R7"
    assert pickle.loads(pickle.dumps(Locator.row(7))) == Locator.row(7)


def test_a_dead_letter_writes_its_locator_as_text():
    letter = DeadLetter("a.jsonl", Locator.line(2), None, "malformed_json", "not valid JSON", "{bad \ud800")
    assert json.loads(letter.to_json()) == {
        "source": "a.jsonl",
        "locator": "line 2",
        "doc_id": None,
        "reason": "malformed_json",
        "message": "not valid JSON",
        "excerpt": "{bad \\ud800",
    }


def _record(source: str, line: int, doc_id: str) -> SourceRecord:
    return SourceRecord(source, Locator.line(line), doc_id, f"text of {doc_id} at {source}:{line}")


def test_packed_batches_keep_every_field():
    records = [
        SourceRecord(
            "s", Locator.line(1), "a", "bad \ud800 text", MISSING, "raw", ("k", None), {"x": [1]}, None
        ),
        SourceRecord("s", Locator.row(2), "b", None),
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
            SourceRecord(
                "s", Locator.line(1), "a", "bad \ud800 text", MISSING, '{"text": "bad \\ud800 text"}'
            ),
            *(_record("t.jsonl", n, f"id{n}") for n in range(2, 200)),
        ]
    )
    back = coder.decode(coder.encode(batch))
    assert isinstance(back, RecordBatch) and back == batch and back[0].target is MISSING
    assert coder.encode(batch) == pack_records(batch)
    # without packing: a batch whose records hold no raw line still gets a size from the constant
    packed = len(coder.encode(batch))
    assert packed / 4 < coder.estimate_size(batch) < packed * 4
