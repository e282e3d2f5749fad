"""Fixtures for the input-source tests: small real files, written compressed by their suffix."""

from __future__ import annotations

import bz2
import gzip
import json
from collections.abc import Callable
from pathlib import Path

import pytest
import zstandard

from normxlogit.transforms.records import DeadLetter, SourceRecord
from normxlogit.transforms.sources import FieldSpec, read_file

COMPRESSORS: dict[str, Callable[[bytes], bytes]] = {
    "": lambda data: data,
    ".gz": gzip.compress,
    ".bz2": bz2.compress,
    ".zst": zstandard.ZstdCompressor().compress,
}


@pytest.fixture(params=list(COMPRESSORS), ids=["plain", "gz", "bz2", "zst"])
def compression(request: pytest.FixtureRequest) -> str:
    """Each compression suffix in turn, "" for none (a test parametrizes it to narrow the list)."""
    return request.param


@pytest.fixture
def compress() -> Callable[[str, bytes], bytes]:
    """``compress(suffix, data)``: ``data`` compressed as the suffix (``.gz``, ``.bz2``, ``.zst``) says."""
    return lambda suffix, data: COMPRESSORS.get(suffix, COMPRESSORS[""])(data)


@pytest.fixture
def write_input(compress: Callable[[str, bytes], bytes]) -> Callable[[Path, bytes], str]:
    """``write_input(path, data)``: writes ``data`` to ``path``, compressed by its suffix; gives the path."""

    def write(path: Path, data: bytes) -> str:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(compress(path.suffix, data))
        return str(path)

    return write


ReadAll = Callable[..., tuple[list[SourceRecord], list[DeadLetter]]]


@pytest.fixture
def read_all() -> ReadAll:
    """``read_all(path, fields=None)``: the file's records and its dead letters, each in file order."""

    def read(path: str, fields: FieldSpec | None = None) -> tuple[list[SourceRecord], list[DeadLetter]]:
        items = list(read_file(path, fields or FieldSpec()))
        records = [i for i in items if isinstance(i, SourceRecord)]
        return records, [i for i in items if isinstance(i, DeadLetter)]

    return read


@pytest.fixture
def jsonl() -> Callable[..., bytes]:
    """``jsonl(*rows)``: the rows as JSON Lines bytes."""
    return lambda *rows: b"".join(json.dumps(row).encode() + b"\n" for row in rows)
