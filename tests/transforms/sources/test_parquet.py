"""Parquet: rows across row groups, only the named columns, bad cells as dead letters."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from normxlogit.transforms.sources import MISSING, FieldSpec, InputFileError


def test_parquet_rows_across_row_groups_read_only_named_columns(tmp_path: Path, read_all) -> None:
    path = str(tmp_path / "e.parquet")
    table = pa.table(
        {"body": ["a", None, "c"], "key": [10, 11, 12], "y": [0.5, 1.5, 2.5], "blob": [b"x"] * 3}
    )
    pq.write_table(table, path, row_group_size=2)
    records, dead = read_all(path, FieldSpec(text_field="body", id_field="key", target_field="y"))
    assert dead == []
    assert [(r.doc_id, r.text, r.target, str(r.locator)) for r in records] == [
        ("10", "a", 0.5, "row 1"),
        ("11", None, 1.5, "row 2"),
        ("12", "c", 2.5, "row 3"),
    ]
    assert json.loads(records[0].raw) == {"body": "a", "key": 10, "y": 0.5}
    derived, _ = read_all(path, FieldSpec(text_field="missing_column"))
    assert [(r.doc_id, r.text) for r in derived] == [(f"{path}#R{n}", MISSING) for n in (1, 2, 3)]


def test_parquet_cells_that_are_not_utf8_are_dead_letters_not_a_failed_file(tmp_path: Path, read_all) -> None:
    """Arrow does not check UTF-8 when reading: one bad cell must not stop the file's other rows."""
    path = str(tmp_path / "bad.parquet")
    texts = pa.array([b"good text", b"bad \xff text", b"fine too"], type=pa.binary()).cast(
        pa.string(), safe=False
    )
    keys = pa.array([b"a", b"b", b"\xfe"], type=pa.binary()).cast(pa.string(), safe=False)
    pq.write_table(pa.table({"id": keys, "text": texts, "lang": ["en", "en", "fr"]}), path, row_group_size=2)
    records, dead = read_all(path, FieldSpec(id_field="id", keep_fields=("lang",)))
    assert [(r.doc_id, r.text, r.kept) for r in records] == [("a", "good text", ("en",))]
    assert [(str(d.locator), d.doc_id, d.reason) for d in dead] == [
        ("row 2", "b", "invalid_utf8"),
        ("row 3", None, "invalid_utf8"),
    ]
    assert "'text' is not valid UTF-8" in dead[0].message and "bad \ufffd text" in dead[0].excerpt
    assert "'id' is not valid UTF-8" in dead[1].message


def test_corrupt_parquet_file_fails_naming_it(tmp_path: Path, write_input, read_all) -> None:
    path = write_input(tmp_path / "o.parquet", b"definitely not columnar data")
    with pytest.raises(InputFileError, match=rf"^{re.escape(str(path))}: not a readable Parquet file"):
        read_all(path)
