"""Writers: token rows to Parquet (Arrow batches), dead letters to JSON Lines, manifest last.

All files go through Beam's file sinks, which write to a temporary folder and rename into place
when the write finalises, so a run that dies leaves no half-written part files. The manifest is
written by a step that waits (as side inputs) on the finalised file names of both writes, so its
presence marks a finished run.
"""

from __future__ import annotations

import apache_beam as beam
import pyarrow as pa
from apache_beam.io.filesystems import FileSystems
from apache_beam.io.localfilesystem import LocalFileSystem

from normxlogit.schema import token_schema
from normxlogit.transforms.atomic_files import replace_atomically
from normxlogit.transforms.layout import ATTRIBUTIONS, ERRORS, MANIFEST_FILE, MANIFEST_TEMP_FILE, Manifest
from normxlogit.transforms.records import AnnotatedBatch, DeadLetter


def join(root: str, *parts: str) -> str:
    """Join path parts under an output root on any filesystem."""
    return FileSystems.join(root, *parts)


def _rows_table(batch: AnnotatedBatch) -> pa.Table:
    return pa.Table.from_batches([batch.rows])


class WriteAttributions(beam.PTransform):
    """Annotated batches -> ``OUT/attributions/part-SSSSS-of-NNNNN.parquet``.

    Each batch's token rows (one Arrow record batch per RunInference batch) are written as they
    are, one Parquet row group each; batches without rows write nothing. Returns the finalised
    file names.
    """

    def __init__(self, output: str, with_layers: bool):
        super().__init__()
        self._prefix = join(output, ATTRIBUTIONS.folder, ATTRIBUTIONS.prefix)
        self._schema = token_schema(with_layers)

    def expand(self, batches):
        return (
            batches
            | "WithRows" >> beam.Filter(lambda b: b.rows.num_rows > 0)
            | "ToTable" >> beam.Map(_rows_table)
            | "WriteParquet"
            >> beam.io.WriteToParquetBatched(
                self._prefix, schema=self._schema, file_name_suffix=".parquet", codec="zstd"
            )
        )


class WriteDeadLetters(beam.PTransform):
    """Dead letters -> ``OUT/errors/part-SSSSS-of-NNNNN.jsonl``; returns the file names.

    A run without dead letters writes no file: Beam's S3 filesystem cannot write an empty object
    (S3 rejects a multipart upload of zero parts), so an empty shard would fail the run there.
    """

    def __init__(self, output: str):
        super().__init__()
        self._prefix = join(output, ERRORS.folder, ERRORS.prefix)

    def expand(self, letters):
        return (
            letters
            | "ToJson" >> beam.Map(DeadLetter.to_json)
            | "WriteJsonl"
            >> beam.io.WriteToText(self._prefix, file_name_suffix=ERRORS.suffix, skip_if_empty=True)
        )


def write_manifest(output: str, manifest: Manifest) -> str:
    """Write ``OUT/manifest.json`` whole or not at all, and return its path.

    On a local disk the text goes to ``layout.MANIFEST_TEMP_FILE``, is flushed, and is renamed to
    ``manifest.json``: a full disk or a kill leaves no manifest, never a short one. Object stores
    (gs://, s3://) put whole objects: ``FileSystems.create`` commits the object when it is closed,
    and the text is complete before it is opened, so a failed upload leaves no object.

    Raises:
        OSError, BeamIOError: the write failed; no manifest is left.
    """
    path = join(output, MANIFEST_FILE)
    body = manifest.to_json().encode()
    if isinstance(FileSystems.get_filesystem(path), LocalFileSystem):
        replace_atomically(path, body, tmp=join(output, MANIFEST_TEMP_FILE))
    else:
        with FileSystems.create(path, mime_type="application/json") as fh:
            fh.write(body)
    return path
