"""Hugging Face ``datasets`` folders written by ``save_to_disk``, read as Arrow streams with pyarrow."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator, Sequence

import pyarrow as pa
from apache_beam.io.filesystems import FileSystems

from normxlogit.transforms.records import DeadLetter, SourceRecord
from normxlogit.transforms.sources.base import FileFormat, register_format
from normxlogit.transforms.sources.errors import InputError, InputFileError
from normxlogit.transforms.sources.fields import FieldSpec, records_from_batches
from normxlogit.transforms.sources.streams import open_raw

STATE_FILE = "state.json"
INFO_FILE = "dataset_info.json"
DICT_FILE = "dataset_dict.json"


@register_format
class DatasetArrowFormat(FileFormat):
    """The Arrow IPC stream files (``data-*.arrow``) of a ``save_to_disk`` folder: each row is one record.

    Only the columns named by the ``FieldSpec`` are converted; the source is the Arrow file's path.
    """

    name = "datasets"
    suffixes = (".arrow",)
    compressible = False

    def read(self, path: str, fields: FieldSpec) -> Iterator[SourceRecord | DeadLetter]:
        """Stream one record per row, record batch by record batch.

        Raises:
            InputFileError: the file is not an Arrow IPC stream or is truncated.
        """
        with open_raw(path) as raw:
            try:
                yield from records_from_batches(path, pa.ipc.open_stream(raw), fields)
            except (pa.ArrowException, OSError) as err:
                raise InputFileError(f"{path}: not a readable Arrow stream: {err}") from err


def select_dataset_files(paths: Sequence[str]) -> list[str]:
    """Replace the files of each ``save_to_disk`` folder in a listing by the data files it holds.

    A folder holding both ``state.json`` and ``dataset_info.json`` is a dataset: its inputs are the Arrow
    files its ``state.json`` lists, in that order, put where ``state.json`` was in the listing. Its other
    files are dropped: the metadata, and the ``cache-*.arrow`` files that ``Dataset.map`` writes into a
    loaded folder. A ``DatasetDict``'s ``dataset_dict.json`` beside its split folders is dropped too.

    Raises:
        InputError: a dataset's ``state.json`` cannot be read or does not list its data files.
    """
    names_by_folder: dict[str, set[str]] = defaultdict(set)
    for path in paths:
        folder, name = FileSystems.split(path)
        names_by_folder[folder].add(name)
    dataset_folders = {
        folder for folder, names in names_by_folder.items() if {STATE_FILE, INFO_FILE} <= names
    }
    dataset_parents = {FileSystems.split(folder)[0] for folder in dataset_folders}
    selected = []
    for path in paths:
        folder, name = FileSystems.split(path)
        if folder in dataset_folders:
            if name == STATE_FILE:
                selected.extend(
                    FileSystems.join(folder, data_file) for data_file in dataset_data_files(folder)
                )
        elif not (name == DICT_FILE and folder in dataset_parents):
            selected.append(path)
    return selected


def dataset_data_files(folder: str) -> list[str]:
    """The names of the Arrow data files that the ``state.json`` of a ``save_to_disk`` folder lists.

    Raises:
        InputError: ``state.json`` cannot be read or does not list data files.
    """
    state_path = FileSystems.join(folder, STATE_FILE)
    try:
        with FileSystems.open(state_path) as state_file:
            state = json.load(state_file)
        return [entry["filename"] for entry in state["_data_files"]]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise InputError(f"{state_path}: not a datasets state.json listing _data_files ({err!r})") from err
