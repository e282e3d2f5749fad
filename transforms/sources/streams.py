"""Opening inputs as byte streams: any Beam filesystem or an http(s) URL, decompressed by extension."""

from __future__ import annotations

import codecs
import importlib.util
import io
import zlib
from collections.abc import Iterator
from typing import BinaryIO
from urllib.parse import urlparse

import fsspec
import zstandard
from apache_beam.io.filesystem import CompressedFile, CompressionTypes
from apache_beam.io.filesystems import FileSystems

from normxlogit.transforms.records import DeadLetter, Locator, excerpt
from normxlogit.transforms.sources.errors import InputError, InputFileError
from normxlogit.transforms.sources.fields import FieldSpec

COMPRESSION_TYPES = {
    ".gz": CompressionTypes.GZIP,
    ".bz2": CompressionTypes.BZIP2,
    ".zst": CompressionTypes.ZSTD,
}
"""The compression suffixes read, and the Beam compression type of each."""

_DECOMPRESSION_ERRORS = (OSError, EOFError, zlib.error, zstandard.ZstdError)


def is_http_url(path: str) -> bool:
    """Whether ``path`` is an http(s) URL, read with fsspec rather than Beam's FileSystems."""
    return urlparse(path).scheme in ("http", "https")


def split_compression(path: str) -> tuple[str, str]:
    """The file name without its compression suffix, and its Beam compression type.

    For a URL the query string is ignored: ``https://h/a.jsonl.gz?x=1`` -> (``/a.jsonl``, GZIP).
    """
    name = urlparse(path).path if is_http_url(path) else path
    for suffix, compression in COMPRESSION_TYPES.items():
        if name.lower().endswith(suffix):
            return name[: -len(suffix)], compression
    return name, CompressionTypes.UNCOMPRESSED


def require_http_support() -> None:
    """Fail with what to install when http(s) inputs cannot be read.

    Raises:
        InputError: aiohttp, which fsspec's HTTP filesystem needs, is not installed.
    """
    if importlib.util.find_spec("aiohttp") is None:
        raise InputError("reading http(s) URLs needs the aiohttp package: pip install aiohttp")


def open_raw(path: str, *, seekable: bool = False) -> BinaryIO:
    """Open the bytes of a file as stored (not decompressed).

    Args:
        path: a path or URL that Beam's FileSystems handles (local, gs://, s3://, ...) or an http(s) URL.
        seekable: whether the reader needs random access (Parquet); over http(s) that needs a server
            that answers Range requests, otherwise the body is streamed in one request.
    """
    if is_http_url(path):
        require_http_support()
        if seekable:
            return fsspec.filesystem("http").open(path, "rb")
        # fsspec's streaming file reads lines by seeking back; a buffered reader needs no seek.
        return io.BufferedReader(fsspec.filesystem("http").open(path, "rb", block_size=0))
    return FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)


def iter_lines(path: str) -> Iterator[bytes]:
    """Stream the lines of a file, decompressed by its extension, each with its line ending.

    A UTF-8 byte order mark at the start of the file is removed.

    Raises:
        InputFileError: the compressed data is corrupt or ends before its end-of-stream marker.
    """
    compression = split_compression(path)[1]
    with open_raw(path) as raw:
        if compression == CompressionTypes.UNCOMPRESSED:
            yield from _without_bom(iter(raw.readline, b""))
            return
        stream = CompressedFile(raw, compression_type=compression)
        try:
            yield from _without_bom(iter(stream.readline, b""))
        except _DECOMPRESSION_ERRORS as err:
            raise InputFileError(f"{path}: corrupt {compression} data: {err}") from err
        if not _reached_end_of_stream(stream):
            raise InputFileError(
                f"{path}: {compression} data ends before its end-of-stream marker (truncated)"
            )


def _reached_end_of_stream(stream: CompressedFile) -> bool:
    # Beam's CompressedFile treats the end of the underlying file as the end of the data, so a truncated
    # file reads as a shorter one; its decompressor's `eof` flag (zlib, bz2 and zstandard alike) tells
    # whether the last compressed stream was complete.
    return stream._decompressor.eof


def _without_bom(lines: Iterator[bytes]) -> Iterator[bytes]:
    first = next(lines, None)
    if first is None:
        return
    yield first[len(codecs.BOM_UTF8) :] if first.startswith(codecs.BOM_UTF8) else first
    yield from lines


def without_newline(line: bytes) -> bytes:
    """The line without its ``\\n`` or ``\\r\\n`` ending."""
    if line.endswith(b"\n"):
        line = line[:-1]
        if line.endswith(b"\r"):
            line = line[:-1]
    return line


def read_utf8_lines(path: str, fields: FieldSpec) -> Iterator[tuple[Locator, str] | DeadLetter]:
    """Stream ``(locator, line)`` pairs, lines numbered from 1, each decoded as strict UTF-8 without
    its ending.

    A line that is not valid UTF-8 becomes an ``invalid_utf8`` dead letter whose excerpt shows the line
    decoded with replacement characters; its doc_id is the derived one, or None when ``fields`` takes ids
    from a field.
    """
    for number, line in enumerate(iter_lines(path), start=1):
        body, locator = without_newline(line), Locator.line(number)
        try:
            yield locator, body.decode("utf-8")
        except UnicodeDecodeError as err:
            doc_id = fields.unparsed_doc_id(locator.derived_id(path))
            message = f"line is not valid UTF-8: {err.reason} at byte {err.start}"
            yield DeadLetter(path, locator, doc_id, "invalid_utf8", message, excerpt(body))
