"""Byte streams: lines that are not UTF-8 (text, JSON Lines, CSV), http(s) URLs through fsspec, and
compressed files that are truncated or corrupt."""

from __future__ import annotations

import gzip
import importlib.util
import re
from pathlib import Path

import pytest

from normxlogit.transforms.sources import InputError, InputFileError, expand_inputs, streams


@pytest.mark.parametrize(
    ("name", "data", "locator"),
    [
        ("i.txt", b"good\nbad \xff byte\n", "line 2"),
        ("i.jsonl", b'{"text": "good"}\n{"text": "bad \xff byte"}\n', "line 2"),
        ("i.csv", b'text\ngood\n"bad \xff byte"\n', "row 2"),
    ],
)
def test_invalid_utf8_line_is_a_dead_letter_with_replacement_excerpt(
    tmp_path: Path, name: str, data: bytes, locator: str, write_input, read_all
) -> None:
    path = write_input(tmp_path / name, data)
    records, dead = read_all(path)
    assert [r.text for r in records] == ["good"]
    assert [(str(d.locator), d.reason) for d in dead] == [(locator, "invalid_utf8")]
    assert "bad \ufffd byte" in dead[0].excerpt
    assert dead[0].doc_id == f"{path}#{'R' if name.endswith('csv') else 'L'}2"


def test_http_url_is_one_file_read_with_fsspec(
    http_folder: tuple[Path, str], write_input, read_all, jsonl
) -> None:
    if importlib.util.find_spec("aiohttp") is None:
        pytest.skip("aiohttp is not installed (pip install aiohttp); fsspec's HTTP filesystem needs it")
    folder, base_url = http_folder
    write_input(folder / "f.jsonl.gz", jsonl({"text": "over http"}, {"text": "again"}))
    (folder / "g.txt").write_bytes(b"plain\nlines\n")
    urls = expand_inputs([f"{base_url}/f.jsonl.gz", f"{base_url}/g.txt"])
    assert urls == [f"{base_url}/f.jsonl.gz", f"{base_url}/g.txt"]
    records, _ = read_all(urls[0])
    assert [(r.source, r.doc_id, r.text) for r in records] == [
        (urls[0], f"{urls[0]}#L1", "over http"),
        (urls[0], f"{urls[0]}#L2", "again"),
    ]
    assert [r.text for r in read_all(urls[1])[0]] == ["plain", "lines"]


def test_http_without_aiohttp_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(streams.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(InputError, match="pip install aiohttp"):
        expand_inputs(["https://example.com/a.jsonl"])


@pytest.mark.parametrize("compression", [".gz", ".bz2", ".zst"])
def test_truncated_compressed_file_fails_naming_it(
    tmp_path: Path, compression: str, compress, read_all, jsonl
) -> None:
    path = tmp_path / f"m.jsonl{compression}"
    whole = compress(compression, jsonl(*({"text": f"line {n}"} for n in range(2000))))
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(InputFileError, match=rf"^{re.escape(str(path))}: .*truncated"):
        read_all(str(path))


def test_corrupt_gzip_fails_naming_it(tmp_path: Path, read_all) -> None:
    path = tmp_path / "n.txt.gz"
    path.write_bytes(gzip.compress(b"x\n" * 100)[:12] + b"\x00not deflate data" * 8)
    with pytest.raises(InputFileError, match=rf"^{re.escape(str(path))}: corrupt gzip data"):
        read_all(str(path))
