"""JSON Lines: one object per non-blank line; lines that are not UTF-8 JSON objects are dead letters."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from normxlogit.transforms.sources import MISSING, FieldSpec


@pytest.mark.parametrize("suffix", [".jsonl", ".ndjson", ".json"])
def test_jsonl_reads_raw_field_values(
    tmp_path: Path, suffix: str, compression: str, write_input, read_all, jsonl
) -> None:
    data = jsonl({"id": 7, "text": "a", "label": 1}, {"id": "x", "text": None}) + b"\n  \n"
    data += jsonl({"id": 9, "text": 3.5, "label": [1]})
    path = write_input(tmp_path / f"b{suffix}{compression}", data)
    records, dead = read_all(path, FieldSpec(id_field="id", target_field="label"))
    assert dead == []
    assert [r.doc_id for r in records] == ["7", "x", "9"]
    assert [r.text for r in records] == ["a", None, 3.5]
    assert [r.target for r in records] == [1, MISSING, [1]]
    assert [str(r.locator) for r in records] == ["line 1", "line 2", "line 5"]  # blank lines 3-4 are skipped
    assert json.loads(records[0].raw) == {"id": 7, "text": "a", "label": 1}


def test_jsonl_derived_ids_and_missing_text(tmp_path: Path, write_input, read_all, jsonl) -> None:
    path = write_input(tmp_path / "c.jsonl", jsonl({"body": "x"}, {"text": "y"}))
    records, _ = read_all(path)
    assert [(r.doc_id, r.text, r.target) for r in records] == [
        (f"{path}#L1", MISSING, None),
        (f"{path}#L2", "y", None),
    ]


def test_json_problems_become_dead_letters(tmp_path: Path, write_input, read_all) -> None:
    path = write_input(tmp_path / "h.jsonl", b'{"text": "ok"}\n{bad\n[1, 2]\n"str"\nnull\n')
    records, dead = read_all(path)
    assert [r.text for r in records] == ["ok"]
    assert [(str(d.locator), d.doc_id, d.reason, d.excerpt) for d in dead] == [
        ("line 2", f"{path}#L2", "malformed_json", "{bad"),
        ("line 3", f"{path}#L3", "not_an_object", "[1, 2]"),
        ("line 4", f"{path}#L4", "not_an_object", '"str"'),
        ("line 5", f"{path}#L5", "not_an_object", "null"),
    ]
    assert dead[1].message == "the line is an array, not a JSON object"
