"""Checks on a record before it reaches the model; every record leaves by one door.

Records travel in batches (``--docs-per-batch``). ``CheckBatchIds`` runs first, before repeated ids
are looked for: a doc_id with a lone surrogate (a JSON ``"\\ud800"`` escape) cannot be a Beam
string key nor a Parquet value, so it is an ``invalid_unicode`` dead letter. ``ValidateTextBatch``
then routes each record (``ValidateTextBatch.route``): main output, records to annotate or evaluate;
``skipped_empty``, empty or whitespace-only texts (counted, not errors); ``dead_letter``, a missing,
null or non-string text, one with NUL bytes or lone surrogates, or a target, response, chat or kept
field with lone surrogates.
"""

from __future__ import annotations

import apache_beam as beam
from apache_beam.metrics import Metrics

from normxlogit.transforms.counters import NAMESPACE, SKIPPED_EMPTY
from normxlogit.transforms.records import DeadLetter, RecordBatch, SourceRecord, has_surrogates
from normxlogit.transforms.sources import MISSING

DEAD_LETTER = "dead_letter"
INVALID_UNICODE = "invalid_unicode"


def _unicode_problem(what: str) -> tuple[str, str]:
    return (
        INVALID_UNICODE,
        f"the {what} holds a lone surrogate (e.g. a JSON \\ud800 escape), which is not a Unicode "
        "character and cannot be written as UTF-8; it is shown escaped here",
    )


def id_problem(record: SourceRecord) -> tuple[str, str] | None:
    """(reason, message) if a record's doc_id cannot be written as UTF-8, else None.

    Sources need no check: a file name that is not valid UTF-8 is refused before the run
    (``pipeline.stages.preflight``), and derived ids are made of the source and a number.
    """
    return _unicode_problem("doc id") if has_surrogates(record.doc_id) else None


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
    if has_surrogates(text):
        return _unicode_problem("text")
    return None


def fields_problem(record: SourceRecord) -> tuple[str, str] | None:
    """(reason, message) if a field the run reads besides the text (its target, response, chat
    messages or a kept field) holds a lone surrogate, which neither the tokenizer nor a Parquet
    writer can take; else None.

    Other bad values (a target that is not a class, a malformed chat) are the model step's.
    """
    named = (("target", record.target), ("response", record.response), ("messages", record.messages))
    for what, value in (*named, *(("kept field", v) for v in record.kept)):
        if _holds_surrogates(value):
            return _unicode_problem(what)
    return None


def _holds_surrogates(value: object) -> bool:
    """A string with a lone surrogate, or a list or mapping (a JSON value) that holds one."""
    if isinstance(value, str):
        return has_surrogates(value)
    if isinstance(value, dict):
        return any(_holds_surrogates(k) or _holds_surrogates(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return any(_holds_surrogates(v) for v in value)
    return False


class CheckBatchIds(beam.DoFn):
    """Check the ids of a batch of records: the batch of records whose doc_id is valid Unicode (main;
    none when no record is), the others to ``dead_letter``.

    Ids are checked before repeats are looked for: an id that is not valid Unicode cannot be a key."""

    def __init__(self) -> None:
        self._dead = Metrics.counter(NAMESPACE, "invalid_id")

    def process(self, batch: RecordBatch):
        valid = RecordBatch()
        for record in batch:
            problem = id_problem(record)
            if problem is None:
                valid.append(record)
            else:
                self._dead.inc()
                yield beam.pvalue.TaggedOutput(DEAD_LETTER, DeadLetter.of(record, *problem))
        if valid:
            yield valid


class ValidateTextBatch(beam.DoFn):
    """Route each record of a batch (``route``): the batch of records to annotate (main; none when
    no record is left), dead letters to ``dead_letter``; empty texts are counted (the
    ``skipped_empty`` counter, which the manifest reports) and go no further.

    Args:
        chat: the run reads chats (``--messages-field``): records have no text field to check.
    """

    def __init__(self, chat: bool = False) -> None:
        self._empty = Metrics.counter(NAMESPACE, SKIPPED_EMPTY)
        self._dead = Metrics.counter(NAMESPACE, "invalid_text")
        self._chat = chat

    def route(self, record: SourceRecord) -> DeadLetter | str | None:
        """A record's way out: its ``DeadLetter``, ``SKIPPED_EMPTY``, or None (to annotate)."""
        # A chat record (--messages-field) has no text to check; the run says it is one, not the
        # record (a null messages field reads as None, which is the model's problem to name).
        chat = self._chat
        problem = (None if chat else text_problem(record.text)) or fields_problem(record)
        if problem is not None:
            self._dead.inc()
            return DeadLetter.of(record, *problem)
        if not chat and not record.text.strip():
            self._empty.inc()
            return SKIPPED_EMPTY
        return None

    def process(self, batch: RecordBatch):
        valid = RecordBatch()
        for record in batch:
            way = self.route(record)
            if way is None:
                valid.append(record)
            elif way != SKIPPED_EMPTY:
                yield beam.pvalue.TaggedOutput(DEAD_LETTER, way)
        if valid:
            yield valid
