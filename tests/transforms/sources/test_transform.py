"""The Beam transform: records and dead letters as two outputs, one by one or in batches."""

from __future__ import annotations

from pathlib import Path

import apache_beam as beam
import pytest
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline
from apache_beam.testing.util import assert_that, equal_to

from normxlogit.transforms.records import DeadLetter, SourceRecord
from normxlogit.transforms.sources import FieldSpec, InputError, ReadRecords


def test_read_records_in_a_pipeline_splits_records_and_dead_letters(
    tmp_path: Path, write_input, jsonl
) -> None:
    text_path = write_input(tmp_path / "in/a.txt.gz", b"one\n\ntwo\n")
    json_path = write_input(tmp_path / "in/b.jsonl", jsonl({"id": "k1", "text": "three"}) + b"{oops\n")
    pipeline = BeamTestPipeline()
    read = pipeline | ReadRecords([str(tmp_path / "in")], FieldSpec(id_field="id"))
    assert (read.records.element_type, read.dead_letter.element_type) == (SourceRecord, DeadLetter)
    assert_that(
        read.records | beam.Map(lambda r: (r.doc_id, r.text, str(r.locator))),
        equal_to(
            [(f"{text_path}#L1", "one", "line 1"), (f"{text_path}#L2", "", "line 2")]
            + [(f"{text_path}#L3", "two", "line 3"), ("k1", "three", "line 1")]
        ),
        label="CheckRecords",
    )
    assert_that(
        read.dead_letter | beam.Map(lambda d: (d.source, str(d.locator), d.doc_id, d.reason)),
        equal_to([(json_path, "line 2", None, "malformed_json")]),
        label="CheckDeadLetters",
    )
    result = pipeline.run()
    result.wait_until_finish()
    counters = result.metrics().query(MetricsFilter().with_namespace("normxlogit"))["counters"]
    totals = {c.key.metric.name: c.committed for c in counters}
    assert totals == {"files_read": 2, "records_read": 4, "dead_letter_malformed_json": 1}


def test_read_records_fails_at_construction_for_a_missing_input(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file or folder"):
        ReadRecords([str(tmp_path / "absent.jsonl")])


def test_read_records_in_batches_shares_batches_across_a_bundles_files(
    tmp_path: Path, write_input, jsonl
) -> None:
    write_input(tmp_path / "in/a.txt", b"one\ntwo\nthree\nfour\n")
    json_path = write_input(tmp_path / "in/b.jsonl", jsonl({"id": "k1", "text": "five"}) + b"{oops\n")
    pipeline = BeamTestPipeline()
    read = pipeline | ReadRecords([str(tmp_path / "in")], FieldSpec(id_field="id")).batched(3)
    assert_that(
        read.records | beam.FlatMap(lambda batch: [r.text for r in batch]),
        equal_to(["one", "two", "three", "four", "five"]),
        label="CheckRecords",
    )
    # The DirectRunner reads both files in one bundle: 5 records make batches of 3 and 2.
    assert_that(read.records | beam.Map(len), equal_to([3, 2]), label="CheckBatches")
    assert_that(
        read.dead_letter | beam.Map(lambda d: (d.source, d.reason)),
        equal_to([(json_path, "malformed_json")]),
        label="CheckDeadLetters",
    )
    pipeline.run().wait_until_finish()
