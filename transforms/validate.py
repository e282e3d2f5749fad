"""Checks on a record's text before it reaches the model; every record leaves by one door.

Main output: records to annotate. ``skipped_empty``: empty or whitespace-only texts (counted, not
errors). ``dead_letter``: a missing, null or non-string text, or one with NUL bytes.
"""

from __future__ import annotations

import apache_beam as beam
from apache_beam.metrics import Metrics

from normxlogit.transforms.records import DeadLetter, SourceRecord
from normxlogit.transforms.sources import MISSING

SKIPPED_EMPTY = "skipped_empty"
DEAD_LETTER = "dead_letter"


def text_problem(text: object) -> tuple[str, str] | None:
    """(reason, message) if a text value cannot be annotated, else None."""
    if text is MISSING:
        return "missing_text", "the record has no text field"
    if text is None:
        return "null_text", "the text field is null"
    if not isinstance(text, str):
        return "non_string_text", f"the text field holds a {type(text).__name__}, not a string"
    if "\x00" in text:
        return "nul_bytes", "the text contains NUL (\\x00) bytes"
    return None


class ValidateText(beam.DoFn):
    """Route each record to annotation, ``skipped_empty`` or ``dead_letter``."""

    def __init__(self) -> None:
        self._empty = Metrics.counter("normxlogit", "skipped_empty")
        self._dead = Metrics.counter("normxlogit", "invalid_text")

    def process(self, record: SourceRecord):
        problem = text_problem(record.text)
        if problem is not None:
            self._dead.inc()
            yield beam.pvalue.TaggedOutput(DEAD_LETTER, DeadLetter.of(record, *problem))
        elif not record.text.strip():
            self._empty.inc()
            yield beam.pvalue.TaggedOutput(SKIPPED_EMPTY, record)
        else:
            yield record
