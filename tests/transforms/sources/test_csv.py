"""CSV with a header row: rows numbered after the header, malformed rows as dead letters."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from normxlogit.transforms.sources import FieldSpec, InputFileError
from normxlogit.transforms.sources import csv as csv_source


def test_csv_rows_with_header_quotes_bom_and_blank_lines(
    tmp_path: Path, compression: str, write_input, read_all
) -> None:
    data = b'\xef\xbb\xbfid,text,label\r\n1,"multi\nline, quoted",pos\r\n\r\n2,,neg\r\n'
    path = write_input(tmp_path / f"d.csv{compression}", data)
    records, dead = read_all(path, FieldSpec(target_field="label"))
    assert dead == []
    assert [r.text for r in records] == ["multi\nline, quoted", ""]
    assert [r.target for r in records] == ["pos", "neg"]
    assert [str(r.locator) for r in records] == ["row 1", "row 2"]
    assert [r.doc_id for r in records] == [f"{path}#R1", f"{path}#R2"]
    assert json.loads(records[1].raw) == {"id": "2", "text": "", "label": "neg"}


def test_csv_row_with_wrong_field_count_is_malformed_csv(tmp_path: Path, write_input, read_all) -> None:
    path = write_input(tmp_path / "k.csv", b"id,text\n1,ok\n2,too,many\n3\n4,fine\n")
    records, dead = read_all(path, FieldSpec(id_field="id"))
    assert [(r.doc_id, str(r.locator)) for r in records] == [("1", "row 1"), ("4", "row 4")]
    assert [(str(d.locator), d.reason, d.doc_id, d.message) for d in dead] == [
        ("row 2", "malformed_csv", None, "the row has 3 fields, the header has 2"),
        ("row 3", "malformed_csv", None, "the row has 1 fields, the header has 2"),
    ]


def test_csv_field_over_the_size_limit_fails_naming_file_and_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, write_input, read_all
) -> None:
    monkeypatch.setattr(csv_source, "FIELD_SIZE_LIMIT", 10)
    path = write_input(tmp_path / "p.csv", b"text\nshort\n" + b"x" * 50 + b"\n")
    with pytest.raises(
        InputFileError, match=rf"^{re.escape(str(path))}: line 3: field larger than field limit"
    ):
        read_all(path)
