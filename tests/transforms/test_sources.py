"""Tests for normxlogit.transforms.sources: every format and compression on small real files."""

from __future__ import annotations

import bz2
import gzip
import importlib.util
import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import apache_beam as beam
import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline
from apache_beam.testing.util import assert_that, equal_to

from normxlogit.transforms.records import DeadLetter, SourceRecord
from normxlogit.transforms.sources import (
    MISSING,
    FieldSpec,
    InputError,
    InputFileError,
    ReadRecords,
    expand_inputs,
    read_file,
    streams,
)
from normxlogit.transforms.sources import csv as csv_source

COMPRESSORS: dict[str, Callable[[bytes], bytes]] = {
    "": lambda data: data,
    ".gz": gzip.compress,
    ".bz2": bz2.compress,
    ".zst": zstandard.ZstdCompressor().compress,
}
COMPRESSIONS = list(COMPRESSORS)


def write_input(path: Path, data: bytes) -> str:
    """Write ``data`` to ``path``, compressed by its suffix; returns the path as str."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(COMPRESSORS.get(path.suffix, COMPRESSORS[""])(data))
    return str(path)


def read_all(path: str, fields: FieldSpec | None = None) -> tuple[list[SourceRecord], list[DeadLetter]]:
    items = list(read_file(path, fields or FieldSpec()))
    return [i for i in items if isinstance(i, SourceRecord)], [i for i in items if isinstance(i, DeadLetter)]


def jsonl(*rows: object) -> bytes:
    return b"".join(json.dumps(row).encode() + b"\n" for row in rows)


# Formats and compressions


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_text_lines_are_records_blank_lines_included(tmp_path: Path, compression: str) -> None:
    path = write_input(tmp_path / f"a.txt{compression}", b"first\n\n   \r\nno newline at end")
    records, dead = read_all(path, FieldSpec(id_field="ignored", target_field="ignored"))
    assert dead == []
    assert [r.text for r in records] == ["first", "", "   ", "no newline at end"]
    assert [r.locator for r in records] == ["line 1", "line 2", "line 3", "line 4"]
    assert [r.doc_id for r in records] == [f"{path}#L{n}" for n in range(1, 5)]
    assert {r.source for r in records} == {path}
    assert [r.target for r in records] == [None] * 4


@pytest.mark.parametrize("compression", COMPRESSIONS)
@pytest.mark.parametrize("suffix", [".jsonl", ".ndjson", ".json"])
def test_jsonl_reads_raw_field_values(tmp_path: Path, suffix: str, compression: str) -> None:
    data = jsonl({"id": 7, "text": "a", "label": 1}, {"id": "x", "text": None}) + b"\n  \n"
    data += jsonl({"id": 9, "text": 3.5, "label": [1]})
    path = write_input(tmp_path / f"b{suffix}{compression}", data)
    records, dead = read_all(path, FieldSpec(id_field="id", target_field="label"))
    assert dead == []
    assert [r.doc_id for r in records] == ["7", "x", "9"]
    assert [r.text for r in records] == ["a", None, 3.5]
    assert [r.target for r in records] == [1, MISSING, [1]]
    assert [r.locator for r in records] == ["line 1", "line 2", "line 5"]  # blank lines 3-4 are skipped
    assert json.loads(records[0].raw) == {"id": 7, "text": "a", "label": 1}


def test_jsonl_derived_ids_and_missing_text(tmp_path: Path) -> None:
    path = write_input(tmp_path / "c.jsonl", jsonl({"body": "x"}, {"text": "y"}))
    records, _ = read_all(path)
    assert [(r.doc_id, r.text, r.target) for r in records] == [
        (f"{path}#L1", MISSING, None),
        (f"{path}#L2", "y", None),
    ]


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_csv_rows_with_header_quotes_bom_and_blank_lines(tmp_path: Path, compression: str) -> None:
    data = b'\xef\xbb\xbfid,text,label\r\n1,"multi\nline, quoted",pos\r\n\r\n2,,neg\r\n'
    path = write_input(tmp_path / f"d.csv{compression}", data)
    records, dead = read_all(path, FieldSpec(target_field="label"))
    assert dead == []
    assert [r.text for r in records] == ["multi\nline, quoted", ""]
    assert [r.target for r in records] == ["pos", "neg"]
    assert [r.locator for r in records] == ["row 1", "row 2"]
    assert [r.doc_id for r in records] == [f"{path}#R1", f"{path}#R2"]
    assert json.loads(records[1].raw) == {"id": "2", "text": "", "label": "neg"}


def test_parquet_rows_across_row_groups_read_only_named_columns(tmp_path: Path) -> None:
    path = str(tmp_path / "e.parquet")
    table = pa.table(
        {"body": ["a", None, "c"], "key": [10, 11, 12], "y": [0.5, 1.5, 2.5], "blob": [b"x"] * 3}
    )
    pq.write_table(table, path, row_group_size=2)
    records, dead = read_all(path, FieldSpec(text_field="body", id_field="key", target_field="y"))
    assert dead == []
    assert [(r.doc_id, r.text, r.target, r.locator) for r in records] == [
        ("10", "a", 0.5, "row 1"),
        ("11", None, 1.5, "row 2"),
        ("12", "c", 2.5, "row 3"),
    ]
    assert json.loads(records[0].raw) == {"body": "a", "key": 10, "y": 0.5}
    derived, _ = read_all(path, FieldSpec(text_field="missing_column"))
    assert [(r.doc_id, r.text) for r in derived] == [(f"{path}#R{n}", MISSING) for n in (1, 2, 3)]


def test_parquet_cells_that_are_not_utf8_are_dead_letters_not_a_failed_file(tmp_path: Path) -> None:
    """Arrow does not check UTF-8 when reading: one bad cell must not stop the file's other rows."""
    path = str(tmp_path / "bad.parquet")
    texts = pa.array([b"good text", b"bad \xff text", b"fine too"], type=pa.binary()).cast(
        pa.string(), safe=False
    )
    keys = pa.array([b"a", b"b", b"\xfe"], type=pa.binary()).cast(pa.string(), safe=False)
    pq.write_table(pa.table({"id": keys, "text": texts, "lang": ["en", "en", "fr"]}), path, row_group_size=2)
    records, dead = read_all(path, FieldSpec(id_field="id", keep_fields=("lang",)))
    assert [(r.doc_id, r.text, r.kept) for r in records] == [("a", "good text", ("en",))]
    assert [(d.locator, d.doc_id, d.reason) for d in dead] == [
        ("row 2", "b", "invalid_utf8"),
        ("row 3", None, "invalid_utf8"),
    ]
    assert "'text' is not valid UTF-8" in dead[0].message and "bad \ufffd text" in dead[0].excerpt
    assert "'id' is not valid UTF-8" in dead[1].message


def test_datasets_folder_reads_the_arrow_files_state_json_lists(tmp_path: Path) -> None:
    folder = tmp_path / "ds"
    ds = datasets.Dataset.from_dict({"text": ["a", "b", "c"], "id": [1, 2, 3], "label": [0, 1, 0]})
    ds.save_to_disk(str(folder), num_shards=2)
    # Dataset.map writes cache files into a loaded folder; they are not part of the dataset.
    shutil.copy(folder / "data-00000-of-00002.arrow", folder / "cache-0123abcd.arrow")
    shards = [str(folder / "data-00000-of-00002.arrow"), str(folder / "data-00001-of-00002.arrow")]
    assert expand_inputs([str(folder)]) == shards
    assert expand_inputs(shards) == shards
    records = [
        r for shard in shards for r in read_all(shard, FieldSpec(id_field="id", target_field="label"))[0]
    ]
    assert [(r.source, r.locator, r.doc_id, r.text, r.target) for r in records] == [
        (shards[0], "row 1", "1", "a", 0),
        (shards[0], "row 2", "2", "b", 1),
        (shards[1], "row 1", "3", "c", 0),
    ]


def test_dataset_dict_folder_reads_every_split(tmp_path: Path) -> None:
    ds = datasets.Dataset.from_dict({"text": ["a", "b"]})
    datasets.DatasetDict({"train": ds, "test": ds.select([1])}).save_to_disk(str(tmp_path / "dd"))
    paths = expand_inputs([str(tmp_path)])
    assert paths == [
        str(tmp_path / "dd" / split / "data-00000-of-00001.arrow") for split in ("test", "train")
    ]
    assert [[r.text for r in read_all(p)[0]] for p in paths] == [["b"], ["a", "b"]]


def test_datasets_folder_with_unreadable_state_json_fails_naming_it(tmp_path: Path) -> None:
    (tmp_path / "dataset_info.json").write_text("{}")
    (tmp_path / "state.json").write_text('{"_fingerprint": "abc"}')
    with pytest.raises(
        InputError, match=rf"^{re.escape(str(tmp_path / 'state.json'))}: not a datasets state"
    ):
        expand_inputs([str(tmp_path)])


def test_http_url_is_one_file_read_with_fsspec(http_folder: tuple[Path, str]) -> None:
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


# Dead letters


def test_json_problems_become_dead_letters(tmp_path: Path) -> None:
    path = write_input(tmp_path / "h.jsonl", b'{"text": "ok"}\n{bad\n[1, 2]\n"str"\nnull\n')
    records, dead = read_all(path)
    assert [r.text for r in records] == ["ok"]
    assert [(d.locator, d.doc_id, d.reason, d.excerpt) for d in dead] == [
        ("line 2", f"{path}#L2", "malformed_json", "{bad"),
        ("line 3", f"{path}#L3", "not_an_object", "[1, 2]"),
        ("line 4", f"{path}#L4", "not_an_object", '"str"'),
        ("line 5", f"{path}#L5", "not_an_object", "null"),
    ]
    assert dead[1].message == "the line is an array, not a JSON object"


@pytest.mark.parametrize(
    ("name", "data", "locator"),
    [
        ("i.txt", b"good\nbad \xff byte\n", "line 2"),
        ("i.jsonl", b'{"text": "good"}\n{"text": "bad \xff byte"}\n', "line 2"),
        ("i.csv", b'text\ngood\n"bad \xff byte"\n', "row 2"),
    ],
)
def test_invalid_utf8_line_is_a_dead_letter_with_replacement_excerpt(
    tmp_path: Path, name: str, data: bytes, locator: str
) -> None:
    path = write_input(tmp_path / name, data)
    records, dead = read_all(path)
    assert [r.text for r in records] == ["good"]
    assert [(d.locator, d.reason) for d in dead] == [(locator, "invalid_utf8")]
    assert "bad \ufffd byte" in dead[0].excerpt
    assert dead[0].doc_id == f"{path}#{'R' if name.endswith('csv') else 'L'}2"


def test_invalid_utf8_doc_id_is_unknown_when_ids_come_from_a_field(tmp_path: Path) -> None:
    path = write_input(tmp_path / "j.jsonl", b'{"id": 1, "text": "\xff"}\n')
    _, dead = read_all(path, FieldSpec(id_field="id"))
    assert [(d.reason, d.doc_id) for d in dead] == [("invalid_utf8", None)]


def test_csv_row_with_wrong_field_count_is_malformed_csv(tmp_path: Path) -> None:
    path = write_input(tmp_path / "k.csv", b"id,text\n1,ok\n2,too,many\n3\n4,fine\n")
    records, dead = read_all(path, FieldSpec(id_field="id"))
    assert [(r.doc_id, r.locator) for r in records] == [("1", "row 1"), ("4", "row 4")]
    assert [(d.locator, d.reason, d.doc_id, d.message) for d in dead] == [
        ("row 2", "malformed_csv", None, "the row has 3 fields, the header has 2"),
        ("row 3", "malformed_csv", None, "the row has 1 fields, the header has 2"),
    ]


def test_record_without_usable_id_is_missing_id(tmp_path: Path) -> None:
    data = jsonl({"id": 1, "text": "a"}, {"text": "b"}, {"id": None, "text": "c"}, {"id": " ", "text": "d"})
    path = write_input(tmp_path / "l.jsonl", data)
    records, dead = read_all(path, FieldSpec(id_field="id"))
    assert [r.doc_id for r in records] == ["1"]
    assert [(d.locator, d.reason, d.doc_id) for d in dead] == [
        (f"line {n}", "missing_id", None) for n in (2, 3, 4)
    ]
    assert dead[0].excerpt == '{"text": "b"}'


# Whole-file errors


@pytest.mark.parametrize("compression", [".gz", ".bz2", ".zst"])
def test_truncated_compressed_file_fails_naming_it(tmp_path: Path, compression: str) -> None:
    path = tmp_path / f"m.jsonl{compression}"
    whole = COMPRESSORS[compression](jsonl(*({"text": f"line {n}"} for n in range(2000))))
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(InputFileError, match=rf"^{re.escape(str(path))}: .*truncated"):
        read_all(str(path))


def test_corrupt_gzip_fails_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "n.txt.gz"
    path.write_bytes(gzip.compress(b"x\n" * 100)[:12] + b"\x00not deflate data" * 8)
    with pytest.raises(InputFileError, match=rf"^{re.escape(str(path))}: corrupt gzip data"):
        read_all(str(path))


@pytest.mark.parametrize(("name", "kind"), [("o.parquet", "Parquet file"), ("o.arrow", "Arrow stream")])
def test_corrupt_columnar_file_fails_naming_it(tmp_path: Path, name: str, kind: str) -> None:
    path = write_input(tmp_path / name, b"definitely not columnar data")
    with pytest.raises(InputFileError, match=rf"^{re.escape(str(path))}: not a readable {kind}"):
        read_all(path)


def test_csv_field_over_the_size_limit_fails_naming_file_and_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(csv_source, "FIELD_SIZE_LIMIT", 10)
    path = write_input(tmp_path / "p.csv", b"text\nshort\n" + b"x" * 50 + b"\n")
    with pytest.raises(
        InputFileError, match=rf"^{re.escape(str(path))}: line 3: field larger than field limit"
    ):
        read_all(path)


# Input expansion


def test_folder_expands_to_supported_files_recursively_sorted(tmp_path: Path) -> None:
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


def test_globs_files_and_repeats_keep_first_place_in_order(tmp_path: Path) -> None:
    for name in ["x/2.jsonl", "x/1.jsonl", "x/deep/3.jsonl", "y.txt"]:
        write_input(tmp_path / name, b"{}\n")
    paths = expand_inputs(
        [str(tmp_path / "y.txt"), str(tmp_path / "x/*.jsonl"), str(tmp_path / "x/**.jsonl")]
    )
    assert paths == [str(tmp_path / n) for n in ["y.txt", "x/1.jsonl", "x/2.jsonl", "x/deep/3.jsonl"]]


def test_glob_matching_unsupported_files_fails_listing_supported(tmp_path: Path) -> None:
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


# The Beam transform


def test_read_records_in_a_pipeline_splits_records_and_dead_letters(tmp_path: Path) -> None:
    text_path = write_input(tmp_path / "in/a.txt.gz", b"one\n\ntwo\n")
    json_path = write_input(tmp_path / "in/b.jsonl", jsonl({"id": "k1", "text": "three"}) + b"{oops\n")
    pipeline = BeamTestPipeline()
    read = pipeline | ReadRecords([str(tmp_path / "in")], FieldSpec(id_field="id"))
    assert (read.records.element_type, read.dead_letter.element_type) == (SourceRecord, DeadLetter)
    assert_that(
        read.records | beam.Map(lambda r: (r.doc_id, r.text, r.locator)),
        equal_to(
            [(f"{text_path}#L1", "one", "line 1"), (f"{text_path}#L2", "", "line 2")]
            + [(f"{text_path}#L3", "two", "line 3"), ("k1", "three", "line 1")]
        ),
        label="CheckRecords",
    )
    assert_that(
        read.dead_letter | beam.Map(lambda d: (d.source, d.locator, d.doc_id, d.reason)),
        equal_to([(json_path, "line 2", None, "malformed_json")]),
        label="CheckDeadLetters",
    )
    result = pipeline.run()
    result.wait_until_finish()
    counters = result.metrics().query(MetricsFilter().with_namespace("normxlogit"))["counters"]
    totals = {c.key.metric.name: c.committed for c in counters}
    assert totals == {"files_read": 2, "records_read": 4, "dead_letter_malformed_json": 1}


def test_read_records_fails_at_construction_for_a_missing_input(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file or folder"):
        ReadRecords([str(tmp_path / "absent.jsonl")])


def test_read_records_in_batches_shares_batches_across_a_bundles_files(tmp_path: Path) -> None:
    write_input(tmp_path / "in/a.txt", b"one\ntwo\nthree\nfour\n")
    json_path = write_input(tmp_path / "in/b.jsonl", jsonl({"id": "k1", "text": "five"}) + b"{oops\n")
    pipeline = BeamTestPipeline()
    read = pipeline | ReadRecords([str(tmp_path / "in")], FieldSpec(id_field="id")).batched(3)
    assert_that(
        read.records | beam.FlatMap(lambda batch: [r.text for r in batch]),
        equal_to(["one", "two", "three", "four", "five"]),
        label="CheckRecords",
    )
    # The DirectRunner reads both files in one bundle: 5 records make batches of 3 and 2.
    assert_that(read.records | beam.Map(len), equal_to([3, 2]), label="CheckBatches")
    assert_that(
        read.dead_letter | beam.Map(lambda d: (d.source, d.reason)),
        equal_to([(json_path, "malformed_json")]),
        label="CheckDeadLetters",
    )
    pipeline.run().wait_until_finish()
