"""Plain text files: one record per line, blank lines included."""

from __future__ import annotations

from pathlib import Path

from normxlogit.transforms.sources import FieldSpec


def test_text_lines_are_records_blank_lines_included(
    tmp_path: Path, compression: str, write_input, read_all
) -> None:
    path = write_input(tmp_path / f"a.txt{compression}", b"first\n\n   \r\nno newline at end")
    records, dead = read_all(path, FieldSpec(id_field="ignored", target_field="ignored"))
    assert dead == []
    assert [r.text for r in records] == ["first", "", "   ", "no newline at end"]
    assert [str(r.locator) for r in records] == ["line 1", "line 2", "line 3", "line 4"]
    assert [r.doc_id for r in records] == [f"{path}#L{n}" for n in range(1, 5)]
    assert {r.source for r in records} == {path}
    assert [r.target for r in records] == [None] * 4
