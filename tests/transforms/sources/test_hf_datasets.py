"""``datasets`` folders written by ``save_to_disk``: the Arrow files ``state.json`` lists."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import datasets
import pytest

from normxlogit.transforms.sources import FieldSpec, InputError, InputFileError, expand_inputs


def test_datasets_folder_reads_the_arrow_files_state_json_lists(tmp_path: Path, read_all) -> None:
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
    assert [(r.source, str(r.locator), r.doc_id, r.text, r.target) for r in records] == [
        (shards[0], "row 1", "1", "a", 0),
        (shards[0], "row 2", "2", "b", 1),
        (shards[1], "row 1", "3", "c", 0),
    ]


def test_dataset_dict_folder_reads_every_split(tmp_path: Path, read_all) -> None:
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


def test_corrupt_arrow_file_fails_naming_it(tmp_path: Path, write_input, read_all) -> None:
    path = write_input(tmp_path / "o.arrow", b"definitely not columnar data")
    with pytest.raises(InputFileError, match=rf"^{re.escape(str(path))}: not a readable Arrow stream"):
        read_all(path)
