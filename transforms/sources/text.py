"""Plain text: one record per line."""

from __future__ import annotations

from collections.abc import Iterator

from normxlogit.transforms.records import DeadLetter, SourceRecord
from normxlogit.transforms.sources.base import FileFormat, register_format
from normxlogit.transforms.sources.fields import FieldSpec
from normxlogit.transforms.sources.streams import read_utf8_lines


@register_format
class TextFormat(FileFormat):
    """Plain text: each line, without its newline, is one record's text; blank lines are records too.

    Text has no fields, so the ``FieldSpec`` is ignored: doc_ids are ``{source}#L{n}`` and there is no target.
    """

    name = "text"
    suffixes = (".txt",)

    def read(self, path: str, fields: FieldSpec) -> Iterator[SourceRecord | DeadLetter]:
        """Stream one record per line, and an ``invalid_utf8`` dead letter per undecodable line."""
        for item in read_utf8_lines(path, FieldSpec()):
            if isinstance(item, DeadLetter):
                yield item
                continue
            locator, line = item
            yield SourceRecord(path, locator, locator.derived_id(path), line, raw=line)
