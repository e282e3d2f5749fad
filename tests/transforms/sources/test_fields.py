"""Fields of structured records: the id field, and doc ids of records that cannot be parsed."""

from __future__ import annotations

from pathlib import Path

from normxlogit.transforms.sources import FieldSpec


def test_invalid_utf8_doc_id_is_unknown_when_ids_come_from_a_field(
    tmp_path: Path, write_input, read_all
) -> None:
    path = write_input(tmp_path / "j.jsonl", b'{"id": 1, "text": "\xff"}\n')
    _, dead = read_all(path, FieldSpec(id_field="id"))
    assert [(d.reason, d.doc_id) for d in dead] == [("invalid_utf8", None)]


def test_record_without_usable_id_is_missing_id(tmp_path: Path, write_input, read_all, jsonl) -> None:
    data = jsonl({"id": 1, "text": "a"}, {"text": "b"}, {"id": None, "text": "c"}, {"id": " ", "text": "d"})
    path = write_input(tmp_path / "l.jsonl", data)
    records, dead = read_all(path, FieldSpec(id_field="id"))
    assert [r.doc_id for r in records] == ["1"]
    assert [(str(d.locator), d.reason, d.doc_id) for d in dead] == [
        (f"line {n}", "missing_id", None) for n in (2, 3, 4)
    ]
    assert dead[0].excerpt == '{"text": "b"}'
