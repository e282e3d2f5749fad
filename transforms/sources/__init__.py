"""Input sources: one module per file format behind ``FileFormat``, and the ``ReadRecords`` transform.

Adding a format is adding a module with a ``register_format``-decorated ``FileFormat`` subclass and
importing it here.
"""

from normxlogit.transforms.sources import csv, hf_datasets, jsonl, parquet, text  # noqa: F401  (registers)
from normxlogit.transforms.sources.base import (
    FileFormat,
    describe_supported,
    format_for_path,
    list_formats,
    read_file,
    register_format,
)
from normxlogit.transforms.sources.errors import InputError, InputFileError
from normxlogit.transforms.sources.expand import expand_inputs
from normxlogit.transforms.sources.fields import MISSING, FieldSpec
from normxlogit.transforms.sources.transform import DEAD_LETTER, RECORDS, ReadFileFn, ReadRecords

__all__ = [
    "DEAD_LETTER",
    "MISSING",
    "RECORDS",
    "FieldSpec",
    "FileFormat",
    "InputError",
    "InputFileError",
    "ReadFileFn",
    "ReadRecords",
    "describe_supported",
    "expand_inputs",
    "format_for_path",
    "list_formats",
    "read_file",
    "register_format",
]
