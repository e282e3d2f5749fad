"""Typed values that flow between the pipeline's transforms."""

from __future__ import annotations

import json
import pickle
import re
from collections.abc import Sequence
from dataclasses import dataclass, fields
from operator import attrgetter
from typing import Any, Literal

from apache_beam import coders

EXCERPT_CHARS = 500
# Lone surrogates (a JSON "\ud800" escape, an undecodable file name) have no UTF-8 encoding.
_SURROGATE = re.compile("[\ud800-\udfff]")


def has_surrogates(value: str) -> bool:
    """Whether ``value`` holds a lone surrogate, which no UTF-8 writer (tokenizer, Beam's string
    coder, Parquet, a JSON Lines file) can encode."""
    return not value.isascii() and _SURROGATE.search(value) is not None


def escape_surrogates(value: str) -> str:
    """``value`` with each lone surrogate written as the six characters of its escape (``\\ud800``)."""
    return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", value)


def excerpt(raw: Any, limit: int = EXCERPT_CHARS) -> str:
    """A bounded, printable excerpt of a raw record for dead-letter files (lone surrogates escaped)."""
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", errors="replace")
    text = raw if isinstance(raw, str) else repr(raw)
    text = text if len(text) <= limit else text[:limit] + f"... [{len(text) - limit} more chars]"
    return escape_surrogates(text)


_ID_MARKS = {"line": "L", "row": "R"}


@dataclass(frozen=True, slots=True)
class Locator:
    """Where a record is in its file: a ``line`` (text, JSON Lines) or a ``row`` (CSV, Parquet, HF
    datasets), numbered from 1. It stays typed until it is written: ``str`` gives the written form,
    ``line 3`` or ``row 3``.

    Attributes:
        kind: ``line`` or ``row``.
        number: the 1-based line or row number.
    """

    kind: Literal["line", "row"]
    number: int

    @classmethod
    def line(cls, number: int) -> Locator:
        """Line ``number`` of a text or JSON Lines file."""
        return cls("line", number)

    @classmethod
    def row(cls, number: int) -> Locator:
        """Row ``number`` of a CSV, Parquet or datasets file (data rows; a CSV header is not one)."""
        return cls("row", number)

    def __str__(self) -> str:
        return f"{self.kind} {self.number}"

    def derived_id(self, source: str) -> str:
        """The doc_id of the record here when no id field is given: ``{source}#L{n}`` for a line,
        ``{source}#R{n}`` for a row; unique across all inputs and stable across runs."""
        return f"{source}#{_ID_MARKS[self.kind]}{self.number}"

    def __reduce__(self):
        # Its two fields as constructor arguments: a batch of records is pickled as one value
        # (``pack_records``), and the default for a slotted dataclass costs five times as much.
        return Locator, (self.kind, self.number)


@dataclass(frozen=True)
class SourceRecord:
    """One input record as read from its file, before any validation of its fields.

    Attributes:
        source: the file the record came from (as matched, e.g. ``s3://b/k.jsonl.gz``).
        locator: where in the file (``Locator``).
        doc_id: the id field's value when ``--id-field`` was given, else ``locator.derived_id(source)``.
        text: the text field's value, unvalidated (may be None, non-string, empty, ...).
        target: the target field's value when ``--target-field`` was given, else None.
        raw: the raw record (line or row rendered as JSON) for dead-letter excerpts.
        kept: the values of the ``--keep-fields`` fields, in their order (None where absent).
        response: with ``--response-field``: that field's raw value (``MISSING`` where absent), the
            response to attribute after the prompt in ``text``; else None.
        messages: with ``--messages-field``: that field's raw value (``MISSING`` where absent), an
            OpenAI-style chat whose last assistant message is the response; else None.
        rationale: with ``--rationale-field`` (``evaluate``): that field's raw value (``MISSING`` where
            absent), the words a person marked as the reason for the label; else None.
    """

    source: str
    locator: Locator
    doc_id: str
    text: Any
    target: Any = None
    raw: str = ""
    kept: tuple = ()
    response: Any = None
    messages: Any = None
    rationale: Any = None


class RecordBatch(list):
    """A batch of ``SourceRecord``s, one Beam element: what the pipeline's front passes from the
    reader to the model step. Its coder (``RecordBatchCoder``) packs it as one value."""

    __slots__ = ()


def pack_records(records: Sequence[SourceRecord]) -> bytes:
    """A batch of records as one bytes value (``unpack_records`` reverses it).

    A batch crosses a shuffle as one blob, which the runner moves without decoding and re-encoding
    each record. The fields are pickled as plain tuples (strings, numbers, JSON values, the
    ``MISSING`` marker), which keeps a text's lone surrogates for its dead letter (UTF-8 coders
    refuse them).
    """
    return pickle.dumps([_FIELDS(record) for record in records], protocol=pickle.HIGHEST_PROTOCOL)


def unpack_records(data: bytes) -> RecordBatch:
    """The records ``pack_records`` packed, in order."""
    return RecordBatch(SourceRecord(*values) for values in pickle.loads(data))


class RecordBatchCoder(coders.Coder):
    """Beam's coder of ``RecordBatch`` (registered for it): ``pack_records`` / ``unpack_records``.

    Its size estimate does not encode: Beam estimates the size of the first elements of every
    PCollection (and a sample after), and the generic coders would pickle a whole batch each time
    (about 10 ms for 2,048 short records, on every step a batch passes, serial in the reading stage).
    """

    def encode(self, value: Sequence[SourceRecord]) -> bytes:
        return pack_records(value)

    def decode(self, encoded: bytes) -> RecordBatch:
        return unpack_records(encoded)

    def estimate_size(self, value: Sequence[SourceRecord]) -> int:
        """About the packed size: the records as read, plus a constant for their other fields."""
        return sum(map(len, map(_RAW, value))) + _RECORD_OVERHEAD * len(value)

    def is_deterministic(self) -> bool:
        return False  # JSON values kept from records (dicts) pickle in their own key order

    def to_type_hint(self):
        return RecordBatch


_RAW = attrgetter("raw")
_RECORD_OVERHEAD = 64  # bytes a packed record takes besides its raw text (ids, locator, pickling)
coders.registry.register_coder(RecordBatch, RecordBatchCoder)
_FIELDS = attrgetter(*(f.name for f in fields(SourceRecord)))


@dataclass(frozen=True)
class DeadLetter:
    """A record that could not be annotated, and why.

    Attributes:
        source, locator, doc_id: as in ``SourceRecord`` (doc_id None when unknown).
        reason: a stable code, e.g. ``malformed_json``, ``missing_text``, ``model_error``.
        message: a readable explanation.
        excerpt: a bounded excerpt of the raw record.
    """

    source: str
    locator: Locator
    doc_id: str | None
    reason: str
    message: str
    excerpt: str

    def to_json(self) -> str:
        """One JSON Lines line, always encodable as UTF-8: lone surrogates in any field (a doc_id or
        source that could not be annotated because of them) are written as visible escapes; the
        locator as its written form (``line 3``)."""
        written = {k: v if v is None else escape_surrogates(str(v)) for k, v in vars(self).items()}
        return json.dumps(written, ensure_ascii=False)

    @classmethod
    def of(cls, record: SourceRecord, reason: str, message: str) -> DeadLetter:
        """The dead letter of a record that was read but failed later."""
        return cls(
            record.source, record.locator, record.doc_id, reason, message, excerpt(record.raw or record.text)
        )


@dataclass
class AnnotatedBatch:
    """RunInference's output for one batch of records: columnar results and the batch's dead letters.

    One element per RunInference batch (never one per document), so that Beam moves a few Arrow
    buffers between stages instead of thousands of pickled Python objects.

    Attributes:
        rows: token rows of every annotated document (``normxlogit.token_schema``), grouped by
            document in the order of ``documents``.
        documents: one row per annotated document (``normxlogit.document_schema``): ``doc_id``,
            ``source``, ``text``, ``n_tokens``, ``truncated``, ``target``, ``prediction``,
            ``prediction_prob``; ``n_tokens`` gives each document's slice of ``rows``.
        dead: the dead letters of the records of this batch that could not be annotated.
        padded_tokens: positions the forward passes ran for this batch (tokens plus padding).
    """

    rows: Any
    documents: Any
    dead: list[DeadLetter]
    padded_tokens: int = 0
