"""Writers: token rows to Parquet (Arrow batches), dead letters to JSON Lines, manifest last.

All files go through Beam's file sinks, which write to a temporary folder and rename into place
when the write finalises, so a run that dies leaves no half-written part files. The manifest is
written by a step that waits (as side inputs) on the finalised file names of both writes, so its
presence marks a finished run.
"""

from __future__ import annotations

import json
from typing import Any

import apache_beam as beam
import pyarrow as pa
from apache_beam.io.filesystems import FileSystems

from normxlogit import to_record_batch, token_schema
from normxlogit.transforms.model_handler import ScoredDoc
from normxlogit.transforms.records import DeadLetter
from normxlogit.transforms.validate import DEAD_LETTER

ATTRIBUTIONS_DIR = "attributions"
ERRORS_DIR = "errors"
MANIFEST = "manifest.json"


def join(root: str, *parts: str) -> str:
    """Join path parts under an output root on any filesystem."""
    return FileSystems.join(root, *parts)


class SplitScored(beam.DoFn):
    """ScoredDoc -> an Arrow record batch of its token rows, or its dead letter."""

    def __init__(self, with_layers: bool):
        self._with_layers = with_layers

    def process(self, doc: ScoredDoc):
        if doc.result is None:
            yield beam.pvalue.TaggedOutput(DEAD_LETTER, doc.error)
        else:
            yield to_record_batch(doc.result, doc.record.doc_id, doc.record.source, self._with_layers)


def _concat(batches: list[pa.RecordBatch]) -> pa.Table:
    return pa.Table.from_batches(batches)


class WriteAttributions(beam.PTransform):
    """Record batches -> ``OUT/attributions/part-SSSSS-of-NNNNN.parquet``.

    Documents are grouped (BatchElements) so that each Parquet row group holds many documents.
    Returns the finalised file names.
    """

    def __init__(self, output: str, with_layers: bool, docs_per_group: int = 512):
        super().__init__()
        self._prefix = join(output, ATTRIBUTIONS_DIR, "part")
        self._schema = token_schema(with_layers)
        self._docs = docs_per_group

    def expand(self, batches):
        return (
            batches
            | "GroupDocs" >> beam.BatchElements(min_batch_size=self._docs, max_batch_size=self._docs)
            | "ToTable" >> beam.Map(_concat)
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
        self._prefix = join(output, ERRORS_DIR, "part")

    def expand(self, letters):
        return (
            letters
            | "ToJson" >> beam.Map(DeadLetter.to_json)
            | "WriteJsonl" >> beam.io.WriteToText(self._prefix, file_name_suffix=".jsonl", skip_if_empty=True)
        )


def write_manifest(_: Any, output: str, manifest: dict, counts: dict, files: dict) -> str:
    """Write ``OUT/manifest.json``: the run description with its counts and output files."""
    import datetime

    body = dict(manifest)
    body["end_time"] = datetime.datetime.now(datetime.timezone.utc).isoformat()
    body["counts"] = counts
    body["files"] = {kind: sorted(names) for kind, names in files.items()}
    path = join(output, MANIFEST)
    with FileSystems.create(path, mime_type="application/json") as fh:
        fh.write(json.dumps(body, indent=2, sort_keys=False).encode())
    return path
