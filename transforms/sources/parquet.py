"""Parquet, streamed one batch of rows at a time."""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from normxlogit.transforms.records import DeadLetter, SourceRecord
from normxlogit.transforms.sources.base import FileFormat, register_format
from normxlogit.transforms.sources.errors import InputFileError
from normxlogit.transforms.sources.fields import FieldSpec, records_from_batches
from normxlogit.transforms.sources.streams import open_raw

BATCH_ROWS = 1024


@register_format
class ParquetFormat(FileFormat):
    """Parquet: each row is one record; only the columns named by the ``FieldSpec`` are read."""

    name = "parquet"
    suffixes = (".parquet",)
    compressible = False

    def read(self, path: str, fields: FieldSpec) -> Iterator[SourceRecord | DeadLetter]:
        """Stream one record per row, batch by batch.

        Raises:
            InputFileError: the file is not Parquet or is corrupt.
        """
        with open_raw(path, seekable=True) as raw:
            try:
                parquet = pq.ParquetFile(raw)
                columns = [name for name in fields.names if name in parquet.schema_arrow.names]
                batches = parquet.iter_batches(batch_size=BATCH_ROWS, columns=columns)
                yield from records_from_batches(path, batches, fields)
            except (pa.ArrowException, OSError) as err:
                raise InputFileError(f"{path}: not a readable Parquet file: {err}") from err
