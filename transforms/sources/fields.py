"""Which fields of a structured record are read, and how a row of fields becomes a ``SourceRecord``."""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from normxlogit.transforms.records import DeadLetter, Locator, SourceRecord, excerpt

if TYPE_CHECKING:
    import pyarrow as pa


class Missing(enum.Enum):
    """The type of ``MISSING``; an enum so that the marker survives pickling between Beam workers."""

    MISSING = "missing"

    def __repr__(self) -> str:
        return "<missing>"


MISSING = Missing.MISSING
"""The value of ``SourceRecord.text`` / ``.target`` when the record has no such field (null is ``None``)."""


@dataclass(frozen=True)
class FieldSpec:
    """Which fields of a JSON, CSV, Parquet or datasets record hold the text, the id and the target.

    Plain text files have no fields: each line is the text and ids are always derived.

    Attributes:
        text_field: the field whose raw value becomes ``SourceRecord.text``.
        id_field: the field whose value, as ``str``, becomes the doc_id; None derives doc_ids from the
            position (``Locator.derived_id``: ``{source}#L{n}`` for lines, ``{source}#R{n}`` for rows).
        target_field: the field whose raw value becomes ``SourceRecord.target``; None for no target.
        keep_fields: fields copied as they are into ``SourceRecord.kept`` (the documents table).
        response_field: the field whose raw value becomes ``SourceRecord.response`` (LLM responses).
        messages_field: the field whose raw value becomes ``SourceRecord.messages`` (chats).
        rationale_field: the field whose raw value becomes ``SourceRecord.rationale`` (``evaluate``'s
            plausibility).
    """

    text_field: str = "text"
    id_field: str | None = None
    target_field: str | None = None
    keep_fields: tuple[str, ...] = ()
    response_field: str | None = None
    messages_field: str | None = None
    rationale_field: str | None = None

    @property
    def names(self) -> list[str]:
        """The field names to read, without repeats."""
        named = (
            self.text_field,
            self.id_field,
            self.target_field,
            *self.keep_fields,
            self.response_field,
            self.messages_field,
            self.rationale_field,
        )
        return list(dict.fromkeys(n for n in named if n))

    def unparsed_doc_id(self, derived_id: str) -> str | None:
        """The doc_id of an unparsable record: ``derived_id``, or None when ids come from a field."""
        return derived_id if self.id_field is None else None


def record_from_mapping(
    source: str, locator: Locator, mapping: Mapping[str, Any], raw: str, fields: FieldSpec
) -> SourceRecord | DeadLetter:
    """The record of one parsed row or JSON object, or a ``missing_id`` dead letter.

    Args:
        source: the file the row came from.
        locator: its line or row; ``locator.derived_id(source)`` is the doc_id when
            ``fields.id_field`` is None.
        mapping: the row's fields by name.
        raw: the row as read (a JSON line) or rendered as JSON, kept for dead-letter excerpts.
        fields: which fields to read.

    Returns:
        A ``SourceRecord`` with the raw text and target values (``MISSING`` where absent), or a
        ``DeadLetter`` with reason ``missing_id`` when the id field is absent, null or blank.
    """
    if fields.id_field is None:
        doc_id = locator.derived_id(source)
    else:
        value = mapping.get(fields.id_field)
        if value is None or (isinstance(value, str) and not value.strip()):
            message = f"the id field {fields.id_field!r} is missing, null or blank"
            return DeadLetter(source, locator, None, "missing_id", message, excerpt(raw))
        doc_id = str(value)
    text = mapping.get(fields.text_field, MISSING)
    target = mapping.get(fields.target_field, MISSING) if fields.target_field else None
    kept = tuple(map(mapping.get, fields.keep_fields)) if fields.keep_fields else ()
    response = mapping.get(fields.response_field, MISSING) if fields.response_field else None
    messages = mapping.get(fields.messages_field, MISSING) if fields.messages_field else None
    rationale = mapping.get(fields.rationale_field, MISSING) if fields.rationale_field else None
    return SourceRecord(source, locator, doc_id, text, target, raw, kept, response, messages, rationale)


def records_from_batches(
    source: str, batches: Iterable[pa.RecordBatch], fields: FieldSpec
) -> Iterator[SourceRecord | DeadLetter]:
    """The records of a stream of Arrow record batches, rows numbered from 1 across batches.

    Only the columns named in ``fields`` are converted, and ``raw`` renders just those columns as JSON:
    other columns (images, embeddings) would make every record large.
    """
    number = 0
    for batch in batches:
        present = [name for name in fields.names if name in batch.schema.names]
        columns = {name: _column_values(batch.column(name)) for name in present}
        for index in range(batch.num_rows):
            number += 1
            row = {name: values[index] for name, values in columns.items()}
            locator = Locator.row(number)
            bad = [name for name, value in row.items() if isinstance(value, _NotUtf8)]
            if bad:
                raw = json.dumps({k: str(v) for k, v in row.items()}, ensure_ascii=False)
                message = (
                    f"the field {bad[0]!r} is not valid UTF-8 (shown decoded with replacement characters)"
                )
                doc_id = fields.unparsed_doc_id(locator.derived_id(source))
                if fields.id_field and fields.id_field not in bad and row.get(fields.id_field) is not None:
                    doc_id = str(row[fields.id_field])
                yield DeadLetter(source, locator, doc_id, "invalid_utf8", message, excerpt(raw))
                continue
            raw = json.dumps(row, ensure_ascii=False, default=str)
            yield record_from_mapping(source, locator, row, raw, fields)


class _NotUtf8(str):
    """A value that Arrow holds as a string but that is not valid UTF-8, decoded with replacements."""


def _column_values(column: pa.Array) -> list:
    """A column's Python values; a value whose string bytes are not UTF-8 becomes a ``_NotUtf8``.

    Arrow does not check UTF-8 when it reads a file, so one bad cell fails the whole column's
    conversion; only then is the column converted cell by cell, to find the bad ones.
    """
    try:
        return column.to_pylist()
    except UnicodeDecodeError:
        return [_cell_value(column, i) for i in range(len(column))]


def _cell_value(column: pa.Array, index: int) -> Any:
    try:
        return column[index].as_py()
    except UnicodeDecodeError:
        import pyarrow as pa

        cell = column[index]
        text = pa.types.is_string(cell.type) or pa.types.is_large_string(cell.type)
        data = cell.cast(pa.large_binary()).as_py() if text else repr(cell).encode()
        return _NotUtf8(data.decode("utf-8", errors="replace"))
