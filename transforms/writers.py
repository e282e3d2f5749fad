"""Writers: token and document rows to Parquet (Arrow batches), dead letters to JSON Lines, manifest last.

All files go through Beam's file sinks, which write to a temporary folder and rename into place
when the write finalises, so a run that dies leaves no half-written part files. The manifest is
written by the launcher once the pipeline has ended and the files hold what the runner counted
(``pipeline/reconcile.py``), and atomically (``write_manifest``), so a valid manifest marks a
finished run.
"""

from __future__ import annotations

from collections.abc import Callable

import apache_beam as beam
import pyarrow as pa
from apache_beam.io.filesystems import FileSystems
from apache_beam.io.localfilesystem import LocalFileSystem
from apache_beam.metrics import Metrics

from normxlogit.transforms.atomic_files import replace_atomically
from normxlogit.transforms.counters import DEAD_LETTERS, NAMESPACE
from normxlogit.transforms.layout import ERRORS, MANIFEST_FILE, MANIFEST_TEMP_FILE, Manifest, PartFiles
from normxlogit.transforms.records import AnnotatedBatch, DeadLetter


def join(root: str, *parts: str) -> str:
    """Join path parts under an output root on any filesystem."""
    return FileSystems.join(root, *parts)


class WriteBatchParquet(beam.PTransform):
    """One Arrow record batch per annotated batch -> ``OUT/{folder}/part-SSSSS-of-NNNNN.parquet``.

    Each batch is written as it is, one Parquet row group (zstd); empty batches write nothing.
    Returns the finalised file names.

    Args:
        output: the run folder.
        files: where the parts go (``layout.ATTRIBUTIONS``, ``layout.DOCUMENTS``).
        schema: the batches' schema.
        pick: the record batch to write from an ``AnnotatedBatch`` (its ``rows`` or ``documents``).
    """

    def __init__(
        self,
        output: str,
        files: PartFiles,
        schema: pa.Schema,
        pick: Callable[[AnnotatedBatch], pa.RecordBatch],
    ):
        super().__init__()
        self._prefix = join(output, files.folder, files.prefix)
        self._suffix = files.suffix
        self._schema = schema
        self._pick = pick

    def expand(self, batches):
        pick = self._pick
        return (
            batches
            | "Pick" >> beam.Map(pick)
            | "NotEmpty" >> beam.Filter(lambda rb: rb.num_rows > 0)
            | "ToTable" >> beam.Map(lambda rb: pa.Table.from_batches([rb]))
            | "WriteParquet"
            >> beam.io.WriteToParquetBatched(
                self._prefix, schema=self._schema, file_name_suffix=self._suffix, codec="zstd"
            )
        )


class DeadLetterLines(beam.DoFn):
    """A dead letter -> its JSON line, counted (``counters.DEAD_LETTERS``) as it goes to the writer."""

    def __init__(self) -> None:
        self._count = Metrics.counter(NAMESPACE, DEAD_LETTERS)

    def process(self, letter: DeadLetter):
        self._count.inc()
        yield letter.to_json()


class WriteDeadLetters(beam.PTransform):
    """Dead letters -> ``OUT/errors/part-SSSSS-of-NNNNN.jsonl``; returns the file names.

    Each is counted on its way in (``DeadLetterLines``), so that the launcher can check that the
    files hold every one (``pipeline/reconcile.py``).

    A run without dead letters writes no file: Beam's S3 filesystem cannot write an empty object
    (S3 rejects a multipart upload of zero parts), so an empty shard would fail the run there.
    """

    def __init__(self, output: str):
        super().__init__()
        self._prefix = join(output, ERRORS.folder, ERRORS.prefix)

    def expand(self, letters):
        return (
            letters
            | "ToJson" >> beam.ParDo(DeadLetterLines())
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
