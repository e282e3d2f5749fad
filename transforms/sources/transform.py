"""The Beam transform that reads every input file into records and dead letters."""

# No `from __future__ import annotations`: Beam reads ReadFileFn.process's return annotation at runtime
# to type the two outputs.

import copy
from collections.abc import Iterator, Sequence
from typing import Literal

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.pvalue import PBegin, TaggedOutput
from apache_beam.transforms.window import GlobalWindows

from normxlogit.transforms.counters import FILES_READ, NAMESPACE, READ_DEAD_LETTER, RECORDS_READ
from normxlogit.transforms.records import DeadLetter, RecordBatch, SourceRecord
from normxlogit.transforms.sources.base import read_file
from normxlogit.transforms.sources.expand import expand_inputs
from normxlogit.transforms.sources.fields import FieldSpec

RECORDS = "records"
DEAD_LETTER = "dead_letter"
COUNT_EVERY = 1024  # records read between two updates of the ``records_read`` counter


class ReadFileFn(beam.DoFn):
    """Reads one input file: ``SourceRecord``s to the main output, ``DeadLetter``s to ``dead_letter``.

    Counters (namespace ``normxlogit``): ``files_read``, ``records_read``, and ``dead_letter_<reason>``
    per dead-letter reason. A whole-file problem raises ``InputFileError``, which fails the pipeline.
    """

    def __init__(self, fields: FieldSpec) -> None:
        super().__init__()
        self.fields = fields
        self._files_read = Metrics.counter(NAMESPACE, FILES_READ)
        self._records_read = Metrics.counter(NAMESPACE, RECORDS_READ)

    def process(self, path: str) -> Iterator[SourceRecord | TaggedOutput[Literal["dead_letter"], DeadLetter]]:
        """Stream the records and dead letters of the file at ``path``.

        Records are counted every ``COUNT_EVERY`` and at the end of the file, not one by one: an
        update of a Beam counter costs microseconds, a sizeable share of reading a short record.
        """
        records = 0
        try:
            for item in read_file(path, self.fields):
                if isinstance(item, DeadLetter):
                    Metrics.counter(NAMESPACE, f"{READ_DEAD_LETTER}{item.reason}").inc()
                    yield TaggedOutput(DEAD_LETTER, item)
                    continue
                records += 1
                if records == COUNT_EVERY:
                    self._records_read.inc(records)
                    records = 0
                yield item
        finally:
            self._records_read.inc(records)
        self._files_read.inc()


class ReadFileBatchesFn(ReadFileFn):
    """``ReadFileFn`` that gives records in ``RecordBatch``es of ``batch_size`` (the last of a bundle
    shorter): one Beam element per batch instead of one per record. A bundle's files share batches,
    so many small files still make full batches."""

    def __init__(self, fields: FieldSpec, batch_size: int) -> None:
        super().__init__(fields)
        self._batch_size = batch_size
        self._batch = RecordBatch()

    def start_bundle(self) -> None:
        self._batch = RecordBatch()

    def process(self, path: str) -> Iterator[RecordBatch | TaggedOutput[Literal["dead_letter"], DeadLetter]]:
        """Stream the file's dead letters, and its records in batches."""
        for item in super().process(path):
            if isinstance(item, TaggedOutput):
                yield item
                continue
            self._batch.append(item)
            if len(self._batch) == self._batch_size:
                yield self._batch
                self._batch = RecordBatch()

    def finish_bundle(self):
        if self._batch:
            yield GlobalWindows.windowed_value(self._batch)
            self._batch = RecordBatch()


class ReadRecords(beam.PTransform):
    """Reads text, JSON Lines, CSV, Parquet and ``datasets`` inputs into records and dead letters.

    The patterns are expanded when the transform is constructed (see ``expand_inputs``), so a pattern
    that matches nothing fails before the pipeline starts. Files are spread over workers, one file per
    element, and each is streamed.

    Example:
        read = pipeline | ReadRecords(["gs://bucket/data/"], FieldSpec(text_field="body"))
        read.records      # PCollection[SourceRecord]
        read.dead_letter  # PCollection[DeadLetter]

    Args:
        patterns: files, folders, globs or http(s) URLs.
        fields: which fields hold the text, id and target; defaults to ``FieldSpec()``.
        batch_size: give the records as lists of this many (``ReadFileBatchesFn``); None: one by one.

    Raises:
        InputError: the patterns cannot be expanded (see ``expand_inputs``).
    """

    def __init__(
        self, patterns: Sequence[str], fields: FieldSpec | None = None, batch_size: int | None = None
    ) -> None:
        super().__init__()
        self.paths = expand_inputs(patterns)
        self.fields = fields or FieldSpec()
        self.batch_size = batch_size

    def batched(self, batch_size: int) -> "ReadRecords":
        """The same inputs (not expanded again) read as lists of ``batch_size`` records."""
        out = copy.copy(self)
        out.batch_size = batch_size
        return out

    # No return annotation: Beam warns that a DoOutputsTuple is not a PCollection type hint.
    def expand(self, pbegin: PBegin):
        """Returns a ``DoOutputsTuple`` of the tagged outputs ``records`` (main) and ``dead_letter``."""
        return (
            pbegin
            | "ListInputFiles" >> beam.Create(self.paths)
            | "SpreadFiles" >> beam.Reshuffle()
            | "ReadFiles"
            >> beam.ParDo(
                ReadFileFn(self.fields)
                if self.batch_size is None
                else ReadFileBatchesFn(self.fields, self.batch_size)
            ).with_outputs(DEAD_LETTER, main=RECORDS)
        )
