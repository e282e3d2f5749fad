"""Repeated doc ids: the first occurrence is annotated, every repeat is a ``duplicate_id`` letter.

Ids from ``--id-field`` may repeat; derived ids (``{source}#L{n}``) never do, so the pipeline adds
this step only when an id field is given. "First" is deterministic on every runner: the smallest
(source path, line/row number), whatever order the records arrive in.

Records travel in batches (``FindRepeatedIds``, then ``DropRepeats``): only the ids travel, hashed
into ``ID_BUCKETS`` combiners that find the first occurrence of each repeated id; the batches
themselves are filtered against that (usually empty) map, a side input, so the records never go
through a shuffle keyed by id.
"""

from __future__ import annotations

import zlib

import apache_beam as beam

from normxlogit.transforms.records import DeadLetter, Locator, RecordBatch, SourceRecord

DUPLICATES = "duplicates"
ID_BUCKETS = 64


def _occurrence(source: str, locator: Locator) -> tuple[str, int]:
    """The sort key of an occurrence: its file, then its line or row number (one file has one kind)."""
    return source, locator.number


def _ids_by_bucket(batch: RecordBatch):
    """``(bucket, [(doc_id, source, locator), ...])`` for each id bucket the batch touches."""
    buckets: dict[int, list] = {}
    crc32 = zlib.crc32
    for record in batch:
        doc_id = record.doc_id
        buckets.setdefault(crc32(doc_id.encode("utf-8")) % ID_BUCKETS, []).append(
            (doc_id, record.source, record.locator)
        )
    return buckets.items()


def _see(seen_ids: dict, doc_id: str, first: tuple[str, Locator], times: int) -> None:
    """Count ``times`` occurrences of ``doc_id`` whose first is ``first`` (source, locator)."""
    seen = seen_ids.get(doc_id)
    if seen is None:
        seen_ids[doc_id] = [first, times]
        return
    if _occurrence(*first) < _occurrence(*seen[0]):
        seen[0] = first
    seen[1] += times


class _FirstOccurrencesFn(beam.CombineFn):
    """Ids -> the first occurrence (source, locator) of each id seen more than once.

    The accumulator maps each id to [(source, locator) of its first occurrence, times seen];
    occurrences are compared only when an id repeats."""

    def create_accumulator(self) -> dict:
        return {}

    def add_input(self, accumulator: dict, ids: list) -> dict:
        for doc_id, source, locator in ids:
            _see(accumulator, doc_id, (source, locator), 1)
        return accumulator

    def merge_accumulators(self, accumulators) -> dict:
        accumulators = iter(accumulators)
        merged = next(accumulators, {})
        for accumulator in accumulators:
            for doc_id, (first, times) in accumulator.items():
                _see(merged, doc_id, first, times)
        return merged

    def extract_output(self, accumulator: dict) -> list[tuple[str, tuple[str, Locator]]]:
        return [(doc_id, first) for doc_id, (first, times) in accumulator.items() if times > 1]


class FindRepeatedIds(beam.PTransform):
    """Batches of records -> ``(doc_id, (source, locator))``: the first occurrence of every id that
    occurs more than once (``DropRepeats`` takes it as a dict side input)."""

    def expand(self, batches):
        return (
            batches
            | "IdsByBucket" >> beam.FlatMap(_ids_by_bucket)
            | "FirstOccurrences" >> beam.CombinePerKey(_FirstOccurrencesFn())
            | "Repeated" >> beam.FlatMap(lambda bucket: bucket[1])
        )


class DropRepeats(beam.DoFn):
    """A batch of records -> the batch without repeats of an id (main; none when nothing is left),
    and a ``duplicate_id`` dead letter per repeat to ``duplicates``.

    ``process`` takes the first occurrences of repeated ids (``FindRepeatedIds``) as a dict."""

    def process(self, batch: RecordBatch, repeated: dict):
        if not repeated:  # no id repeats anywhere: the usual case
            yield batch
            return
        kept = RecordBatch()
        for record in batch:
            first = repeated.get(record.doc_id)
            if first is None or first == (record.source, record.locator):
                kept.append(record)
            else:
                yield beam.pvalue.TaggedOutput(DUPLICATES, _duplicate(record, *first))
        if kept:
            yield kept


def _duplicate(repeat: SourceRecord, source: str, locator: Locator) -> DeadLetter:
    return DeadLetter.of(
        repeat,
        "duplicate_id",
        f"doc id {repeat.doc_id!r} was already used by {source} ({locator}); repeats are not annotated",
    )
