"""Slices of a corpus: the whole corpus, and one slice per value of each ``--by`` field.

A document-level field (``prediction``, ``target``, ``source``, a ``--keep-fields`` field) puts
each document in one slice, read from the run's documents table; ``segment`` is a token-level
field (response runs: ``prompt``, ``response``, a chat message's role), so one document's words can
lie in several of its slices. A null value is a slice of its own (label null).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from normxlogit.pipeline.findings.bootstrap import document_keys
from normxlogit.pipeline.findings.words import DOCUMENT_LABELS, SEGMENT, read_documents
from normxlogit.transforms.layout import Manifest

CORPUS = "*"  # the slice_field and slice of the whole corpus
# A field with more values names documents rather than groups of them (an id, a free text).
MAX_SLICES = 1000


class SliceError(ValueError):
    """A ``--by`` field that cannot slice this run, or documents the run cannot place in a slice."""


def sliceable_fields(manifest: Manifest) -> tuple[str, ...]:
    """The ``--by`` fields a run offers: its document labels, ``segment`` and its ``--keep-fields``."""
    return (*DOCUMENT_LABELS, SEGMENT, *manifest.sections.options.keep_fields)


def check_fields(by: Sequence[str], manifest: Manifest) -> tuple[str, ...]:
    """``by`` without repeats, each a field of the run.

    Raises:
        SliceError: a field the run does not have (the message lists those it has).
    """
    offered = sliceable_fields(manifest)
    unknown = [f for f in by if f not in offered]
    if unknown:
        raise SliceError(
            f"--by {unknown[0]}: not a field of this run; choose from {', '.join(offered)} "
            "(--keep-fields of annotate add fields)"
        )
    return tuple(dict.fromkeys(by))


@dataclass
class Slices:
    """Every slice by id: id 0 is the corpus; each ``(field, label)`` gets the next id when first seen.

    Attributes:
        fields: ``CORPUS`` then the ``--by`` fields, in order.
        field_of: the position in ``fields`` of each slice's field, by id.
        labels: each slice's label (null for a null value), by id.
    """

    fields: tuple[str, ...]
    field_of: list[int] = field(default_factory=lambda: [0])
    labels: list[str | None] = field(default_factory=lambda: [CORPUS])
    _ids: dict[tuple[int, str | None], int] = field(default_factory=lambda: {(0, CORPUS): 0})

    def ids(self, name: str, labels: pa.Array) -> np.ndarray:
        """(n,) int64 slice id of each value of field ``name`` (new values get new ids).

        Raises:
            SliceError: the field would hold more than ``MAX_SLICES`` slices.
        """
        position = self.fields.index(name)
        encoded = pc.dictionary_encode(labels)
        mapping = np.array([self._id(position, v) for v in encoded.dictionary.to_pylist()], np.int64)
        codes = pc.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False)
        null_id = self._id(position, None) if (codes < 0).any() else -1
        return np.where(codes >= 0, mapping[np.maximum(codes, 0)] if len(mapping) else -1, null_id)

    def _id(self, position: int, label: str | None) -> int:
        key = (position, label)
        if key not in self._ids:
            if self.field_of.count(position) >= MAX_SLICES:
                raise SliceError(
                    f"--by {self.fields[position]} has more than {MAX_SLICES:,} values; slice by a field "
                    "that names groups of documents (a label, a language, a split), not one per document"
                )
            self._ids[key] = len(self.labels)
            self.field_of.append(position)
            self.labels.append(label)
        return self._ids[key]

    def __len__(self) -> int:
        return len(self.labels)

    def columns(self, slice_id: np.ndarray) -> dict[str, pa.Array]:
        """``slice_field`` and ``slice`` (label) columns for rows of slices ``slice_id``."""
        fields = pa.array([self.fields[f] for f in self.field_of], pa.string())
        ids = pa.array(slice_id)
        return {"slice_field": fields.take(ids), "slice": pa.array(self.labels, pa.string()).take(ids)}


@dataclass(frozen=True)
class DocumentIndex:
    """The run's documents by key, with their slice ids under each document-level ``--by`` field.

    Attributes:
        keys: (documents,) sorted document keys (``bootstrap.document_keys``).
        slice_ids: field -> (documents,) slice id of each document, in ``keys`` order.
    """

    keys: np.ndarray
    slice_ids: dict[str, np.ndarray]

    def rows(self, doc_ids: pa.Array, keys: np.ndarray) -> np.ndarray:
        """Row of each document (``doc_ids`` with their ``keys``) in the index.

        Raises:
            SliceError: a document the documents table does not hold.
        """
        rows = np.minimum(np.searchsorted(self.keys, keys), max(len(self.keys) - 1, 0))
        missing = np.flatnonzero(self.keys[rows] != keys) if len(self.keys) else np.arange(len(keys))
        if missing.size:
            raise SliceError(
                f"document {doc_ids[int(missing[0])].as_py()!r} has token rows but no row in the documents "
                "table; the run is incomplete: re-run `normxlogit annotate`"
            )
        return rows


def index_documents(run: Path, by: Sequence[str], slices: Slices) -> DocumentIndex:
    """Read the document-level ``by`` fields of the run's documents table and give each value a slice.

    Raises:
        SliceError: repeated doc ids (one document, one row), or too many values in a field.
    """
    names = [f for f in by if f != SEGMENT]
    documents = read_documents(run, names)
    keys = document_keys(documents["doc_id"])
    order = np.argsort(keys, kind="stable")
    keys = keys[order]
    repeated = np.flatnonzero(keys[1:] == keys[:-1])
    if repeated.size:
        doc_id = documents["doc_id"][int(order[repeated[0]])].as_py()
        raise SliceError(
            f"the documents table holds {doc_id!r} more than once; stats needs one row per document "
            "(annotate with distinct --id-field values)"
        )
    ids = {name: slices.ids(name, documents[name].combine_chunks())[order] for name in names}
    return DocumentIndex(keys, ids)
