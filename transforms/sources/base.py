"""The interface every input format implements, and the registry that maps file suffixes to formats."""

from __future__ import annotations

import abc
import posixpath
from collections.abc import Iterator
from typing import ClassVar, TypeVar

from apache_beam.io.filesystem import CompressionTypes

from normxlogit.transforms.records import DeadLetter, SourceRecord
from normxlogit.transforms.sources.errors import InputError
from normxlogit.transforms.sources.fields import FieldSpec
from normxlogit.transforms.sources.streams import COMPRESSION_TYPES, split_compression


class FileFormat(abc.ABC):
    """An input format: the file suffixes it claims and how it reads one file into records.

    ``read`` yields a ``SourceRecord`` per record and a ``DeadLetter`` per record it cannot parse, streaming
    the file; it raises ``InputFileError`` when the file as a whole is unreadable. Decorate a subclass with
    ``register_format`` to make its suffixes readable.

    Attributes:
        name: a short id, e.g. ``jsonl``.
        suffixes: the lower-case file suffixes it reads, e.g. ``(".jsonl", ".ndjson")``.
        compressible: whether a compression suffix (``.gz``, ``.bz2``, ``.zst``) may follow them.
    """

    name: ClassVar[str]
    suffixes: ClassVar[tuple[str, ...]]
    compressible: ClassVar[bool] = True

    @abc.abstractmethod
    def read(self, path: str, fields: FieldSpec) -> Iterator[SourceRecord | DeadLetter]:
        """Stream the records and dead letters of the file at ``path``.

        Raises:
            InputFileError: the file as a whole cannot be read.
        """


_FORMATS: dict[str, FileFormat] = {}

F = TypeVar("F", bound=type[FileFormat])


def register_format(cls: F) -> F:
    """Class decorator that makes a ``FileFormat``'s suffixes readable.

    Raises:
        ValueError: a suffix is already claimed by another format.
    """
    for suffix in cls.suffixes:
        if suffix in _FORMATS:
            raise ValueError(f"suffix {suffix} is claimed by both {_FORMATS[suffix].name} and {cls.name}")
        _FORMATS[suffix] = cls()
    return cls


def list_formats() -> list[str]:
    """The names of the registered formats, sorted."""
    return sorted({fmt.name for fmt in _FORMATS.values()})


def describe_supported() -> str:
    """A sentence listing the readable suffixes, for error messages and ``--help``."""
    compressible = sorted(s for s, fmt in _FORMATS.items() if fmt.compressible)
    return (
        f"supported: {', '.join(sorted(_FORMATS))}; {', '.join(compressible)} may also end in "
        f"{', '.join(COMPRESSION_TYPES)}; a folder written by datasets' save_to_disk is read as a dataset"
    )


def _format_or_none(path: str) -> FileFormat | None:
    name, compression = split_compression(path)
    fmt = _FORMATS.get(posixpath.splitext(name)[1].lower())
    if fmt is None or (compression != CompressionTypes.UNCOMPRESSED and not fmt.compressible):
        return None
    return fmt


def is_supported(path: str) -> bool:
    """Whether some registered format reads ``path``, judged by its suffixes."""
    return _format_or_none(path) is not None


def format_for_path(path: str) -> FileFormat:
    """The format that reads ``path``, judged by its suffixes.

    Raises:
        InputError: no format reads it; the message lists the supported suffixes.
    """
    fmt = _format_or_none(path)
    if fmt is None:
        raise InputError(f"{path}: unsupported input file type; {describe_supported()}")
    return fmt


def read_file(path: str, fields: FieldSpec) -> Iterator[SourceRecord | DeadLetter]:
    """Stream the records and dead letters of one input file, in file order; usable without Beam.

    Raises:
        InputError: the file type is unsupported.
        InputFileError: the file as a whole cannot be read.
    """
    return format_for_path(path).read(path, fields)
