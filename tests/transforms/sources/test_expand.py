"""Expanding input patterns: folders, globs, repeats, and patterns that cannot be used."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from normxlogit.transforms.sources import InputError, expand_inputs


def test_folder_expands_to_supported_files_recursively_sorted(tmp_path: Path, write_input) -> None:
    for name in [
        "b.jsonl",
        "a/z.txt.zst",
        "a/y.csv",
        "README.md",
        ".cache/x.jsonl",
        "a/_SUCCESS",
        "c.parquet",
    ]:
        write_input(tmp_path / name, b"text\nx\n")
    expected = [str(tmp_path / n) for n in ["a/y.csv", "a/z.txt.zst", "b.jsonl", "c.parquet"]]
    assert expand_inputs([str(tmp_path)]) == expected
    assert expand_inputs([str(tmp_path) + "/"]) == expected
    assert expand_inputs(expected) == expected  # expanding an expanded list changes nothing


def test_globs_files_and_repeats_keep_first_place_in_order(tmp_path: Path, write_input) -> None:
    for name in ["x/2.jsonl", "x/1.jsonl", "x/deep/3.jsonl", "y.txt"]:
        write_input(tmp_path / name, b"{}\n")
    paths = expand_inputs(
        [str(tmp_path / "y.txt"), str(tmp_path / "x/*.jsonl"), str(tmp_path / "x/**.jsonl")]
    )
    assert paths == [str(tmp_path / n) for n in ["y.txt", "x/1.jsonl", "x/2.jsonl", "x/deep/3.jsonl"]]


def test_glob_matching_unsupported_files_fails_listing_supported(tmp_path: Path, write_input) -> None:
    write_input(tmp_path / "a.jsonl", b"{}\n")
    write_input(tmp_path / "notes.md", b"# notes\n")
    with pytest.raises(InputError, match=r"notes\.md; supported: .*\.jsonl.*give the folder"):
        expand_inputs([str(tmp_path / "*")])


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("nope/missing.jsonl", "no such file or folder"),
        ("nope/*.jsonl", "no file matches this pattern"),
        ("empty", "the folder holds no supported input files"),
        ("data.xlsx", "unsupported input file type; supported: .arrow, .csv, .json, .jsonl"),
        ("data.parquet.gz", "unsupported input file type"),
    ],
)
def test_unusable_pattern_fails_naming_it(tmp_path: Path, pattern: str, message: str) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.md").write_text("no inputs here")
    for name in ["data.xlsx", "data.parquet.gz"]:
        (tmp_path / name).write_bytes(b"x")
    with pytest.raises(InputError, match=f"^{re.escape(str(tmp_path / pattern))}: {message}"):
        expand_inputs([str(tmp_path / pattern)])


def test_scheme_without_a_filesystem_is_an_input_error() -> None:
    with pytest.raises(InputError, match="^nosuchscheme://b/x.jsonl: cannot list: "):
        expand_inputs(["nosuchscheme://b/x.jsonl"])


def test_no_patterns_is_an_input_error() -> None:
    with pytest.raises(InputError, match="no inputs given"):
        expand_inputs([])
