"""CSV with a header row, parsed with Python's csv module."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator

from normxlogit.transforms.records import DeadLetter, Locator, SourceRecord, excerpt
from normxlogit.transforms.sources.base import FileFormat, register_format
from normxlogit.transforms.sources.errors import InputFileError
from normxlogit.transforms.sources.fields import FieldSpec, record_from_mapping
from normxlogit.transforms.sources.streams import iter_lines

# The csv module's default limit is 128 KiB per field, less than a long document.
FIELD_SIZE_LIMIT = 2**31 - 1


@register_format
class CsvFormat(FileFormat):
    """CSV (excel dialect) whose first row names the fields; quoted fields may span lines.

    Rows are numbered from 1 after the header; blank lines are not rows.
    """

    name = "csv"
    suffixes = (".csv",)

    def read(self, path: str, fields: FieldSpec) -> Iterator[SourceRecord | DeadLetter]:
        """Stream one record per row, and an ``invalid_utf8`` / ``malformed_csv`` / ``missing_id`` dead
        letter per row that cannot be read.

        Raises:
            InputFileError: the csv module cannot go on parsing (e.g. a field over ``FIELD_SIZE_LIMIT``).
        """
        csv.field_size_limit(FIELD_SIZE_LIMIT)
        # surrogateescape keeps undecodable bytes through parsing, so one bad row does not stop the file.
        reader = csv.reader(line.decode("utf-8", "surrogateescape") for line in iter_lines(path))
        try:
            header = next(reader, None)
            number = 0
            for row in reader:
                if row:
                    number += 1
                    yield parse_csv_row(path, Locator.row(number), header, row, fields)
        except csv.Error as err:
            raise InputFileError(f"{path}: line {reader.line_num}: {err}") from err


def parse_csv_row(
    path: str, locator: Locator, header: list[str], row: list[str], fields: FieldSpec
) -> SourceRecord | DeadLetter:
    """The record of a data row, or an ``invalid_utf8`` / ``malformed_csv`` / ``missing_id`` dead
    letter."""
    if not _is_utf8(row):
        reason, message = "invalid_utf8", "the row is not valid UTF-8"
        raw = json.dumps([_with_replacement_chars(value) for value in row], ensure_ascii=False)
    elif len(row) != len(header):
        reason, message = "malformed_csv", f"the row has {len(row)} fields, the header has {len(header)}"
        raw = json.dumps(row, ensure_ascii=False)
    else:
        mapping = dict(zip(header, row))
        return record_from_mapping(path, locator, mapping, json.dumps(mapping, ensure_ascii=False), fields)
    doc_id = fields.unparsed_doc_id(locator.derived_id(path))
    return DeadLetter(path, locator, doc_id, reason, message, excerpt(raw))


def _is_utf8(row: list[str]) -> bool:
    try:
        "".join(row).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _with_replacement_chars(value: str) -> str:
    return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
