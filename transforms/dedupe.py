"""Repeated doc ids: the first occurrence is annotated, every repeat is a ``duplicate_id`` letter.

Ids from ``--id-field`` may repeat; derived ids (``{source}#L{n}``) never do, so the pipeline adds
this step only when an id field is given. "First" is deterministic on every runner: the smallest
(source path, line/row number), whatever order the records arrive in.
"""

from __future__ import annotations

import apache_beam as beam

from normxlogit.transforms.records import DeadLetter, SourceRecord

DUPLICATES = "duplicates"


def occurrence_key(record: SourceRecord) -> tuple[str, int]:
    """Sort key of a record within its id group: (source, line/row number)."""
    return record.source, int(record.locator.rsplit(" ", 1)[-1])


class _KeepFirst(beam.DoFn):
    def process(self, element: tuple[str, list[SourceRecord]]):
        _, group = element
        ordered = sorted(group, key=occurrence_key)
        yield ordered[0]
        first = ordered[0]
        for repeat in ordered[1:]:
            yield beam.pvalue.TaggedOutput(
                DUPLICATES,
                DeadLetter.of(
                    repeat,
                    "duplicate_id",
                    f"doc id {repeat.doc_id!r} was already used by {first.source} "
                    f"({first.locator}); repeats are not annotated",
                ),
            )


class DropDuplicateIds(beam.PTransform):
    """Records -> unique-id records (main output) and ``duplicates`` dead letters.

    Args:
        keyed: the records come as ``(doc_id, record)`` pairs already (``ValidateIds(keyed=True)``).
    """

    def __init__(self, keyed: bool = False):
        super().__init__()
        self._keyed = keyed

    def expand(self, records):
        if not self._keyed:
            records = records | "KeyById" >> beam.Map(lambda r: (r.doc_id, r))
        return (
            records
            | "GroupById" >> beam.GroupByKey()
            | "KeepFirst" >> beam.ParDo(_KeepFirst()).with_outputs(DUPLICATES, main="unique")
        )
