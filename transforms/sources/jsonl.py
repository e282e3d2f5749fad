"""JSON Lines: one JSON object per line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from normxlogit.transforms.records import DeadLetter, Locator, SourceRecord, excerpt
from normxlogit.transforms.sources.base import FileFormat, register_format
from normxlogit.transforms.sources.fields import FieldSpec, record_from_mapping
from normxlogit.transforms.sources.streams import read_utf8_lines

_JSON_TYPE_NAMES = {list: "an array", str: "a string", int: "a number", float: "a number", bool: "a boolean"}


@register_format
class JsonLinesFormat(FileFormat):
    """JSON Lines (``.json`` too): each non-blank line is one JSON object; blank lines are not records."""

    name = "jsonl"
    suffixes = (".jsonl", ".ndjson", ".json")

    def read(self, path: str, fields: FieldSpec) -> Iterator[SourceRecord | DeadLetter]:
        """Stream one record per object line, and a dead letter per line that is not a UTF-8 JSON object."""
        for item in read_utf8_lines(path, fields):
            if isinstance(item, DeadLetter):
                yield item
            elif item[1].strip():
                yield parse_json_line(path, *item, fields)


def parse_json_line(path: str, locator: Locator, line: str, fields: FieldSpec) -> SourceRecord | DeadLetter:
    """The record of one JSON line, or a ``malformed_json``/``not_an_object``/``missing_id`` dead letter."""
    try:
        value = json.loads(line)
    except (ValueError, RecursionError) as err:
        reason, message = "malformed_json", f"not valid JSON: {err}"
    else:
        if isinstance(value, dict):
            return record_from_mapping(path, locator, value, line, fields)
        reason, message = "not_an_object", f"the line is {_json_type_name(value)}, not a JSON object"
    doc_id = fields.unparsed_doc_id(locator.derived_id(path))
    return DeadLetter(path, locator, doc_id, reason, message, excerpt(line))


def _json_type_name(value: Any) -> str:
    return "null" if value is None else _JSON_TYPE_NAMES[type(value)]
