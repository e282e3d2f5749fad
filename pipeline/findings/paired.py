"""Two runs' aligned units as word observations, summed per (slice, word, document) and tallied.

What ``word_deltas`` turns into words.parquet and flips.parquet (its docstring defines the figures).
A unit counts once per slice field: in the corpus slice ``*`` and in its slice of each ``--by``
field (run A's value of a document field; run A's ``segment`` of the unit's first word).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from normxlogit.pipeline.findings.align import TextBatch, Units, unit_words
from normxlogit.pipeline.findings.slices import DocumentIndex, Slices
from normxlogit.pipeline.findings.tally import KeyedSums
from normxlogit.pipeline.findings.words import SEGMENT

FLIP_COLUMNS = ("sign_pos_to_neg", "sign_neg_to_pos", "topk_a_only", "topk_b_only")
TALLY_SUMS = ("n_docs", "n_occurrences", "sum_a", "sum_b", "flip_docs", *FLIP_COLUMNS)
TALLY_SCHEMA = pa.schema(
    [pa.field("slice_id", pa.int64()), pa.field("word", pa.string())]
    + [pa.field(s, pa.float64() if s.startswith("sum") else pa.int64()) for s in TALLY_SUMS]
)
# The per-(slice, word, document) sums the bootstrap adds up, spilled between passes.
ENTRY_SCHEMA = pa.schema(
    [
        pa.field("slice_id", pa.int64()),
        pa.field("word", pa.string()),
        pa.field("sum_a", pa.float64()),
        pa.field("sum_b", pa.float64()),
        pa.field("count", pa.float64()),
    ]
)


def standardised(doc: np.ndarray, n_docs: int, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """z-scores of ``x`` within each document (population sd) and, per document, whether they exist
    (at least 2 units, not all equal)."""
    counts = np.bincount(doc, minlength=n_docs)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.bincount(doc, weights=x, minlength=n_docs) / counts
        centred = x - mean[doc]
        sd = np.sqrt(np.bincount(doc, weights=centred * centred, minlength=n_docs) / counts)
        # relative to the scores' magnitude: a spread of rounding error is no spread
        scale = np.maximum(np.bincount(doc, weights=np.abs(x), minlength=n_docs) / counts, 1e-300)
        valid = (counts >= 2) & (sd > 1e-12 * scale)
        return np.where(valid[doc], centred / np.where(valid, sd, 1.0)[doc], 0.0), valid


@dataclass(frozen=True)
class UnitWords:
    """A batch's aligned units as word observations, once per slice field (arrays of one length).

    Attributes:
        words: the distinct word texts; ``word`` indexes them.
        slice_id, word, doc: each observation's slice, word and document (index into ``keys``).
        value_a, value_b: the unit's value in each run (z-scores with ``standardise``).
        valid: the document has values (see ``standardised``).
        raw_a, raw_b: the raw unit scores (flips).
        top_a, top_b: the unit is in the run's top-k of its document.
    """

    words: pa.Array
    slice_id: np.ndarray
    word: np.ndarray
    doc: np.ndarray
    value_a: np.ndarray
    value_b: np.ndarray
    valid: np.ndarray
    raw_a: np.ndarray
    raw_b: np.ndarray
    top_a: np.ndarray
    top_b: np.ndarray


def unit_observations(
    texts: TextBatch,
    units: Units,
    segment_a: pa.Array | None,
    doc_ids: pa.Array,
    keys: np.ndarray,
    index: DocumentIndex | None,
    slices: Slices,
    *,
    casefold: bool,
    standardise: bool,
    top: tuple[np.ndarray, np.ndarray],
) -> UnitWords:
    """A batch's aligned units as word observations in the corpus slice and one slice per field.

    Args:
        segment_a: run A's ``segment`` of each of its word rows (``--by segment``; else None).
        doc_ids, keys: the batch's documents (``units.doc`` indexes them).
        index: run A's documents with their slice ids (``--by`` document fields; else None).
        top: whether each unit is in run A's and in run B's top-k of its document.
    """
    n = len(keys)
    encoded = pc.dictionary_encode(unit_words(texts, units, casefold))
    word = encoded.indices.to_numpy().astype(np.int64)
    per_field = [np.zeros(len(units), np.int64)]
    rows = index.rows(doc_ids, keys) if index is not None else None
    for name in slices.fields[1:]:
        if name == SEGMENT:
            per_field.append(slices.ids(SEGMENT, segment_a.take(pa.array(units.row_a))))
        else:
            per_field.append(index.slice_ids[name][rows][units.doc])
    if standardise:
        value_a, valid_a = standardised(units.doc, n, units.score_a)
        value_b, valid_b = standardised(units.doc, n, units.score_b)
        valid = (valid_a & valid_b)[units.doc]
    else:
        value_a, value_b, valid = units.score_a, units.score_b, np.ones(len(units), bool)
    fields = len(per_field)

    def tiled(values):
        return np.tile(values, fields)

    return UnitWords(
        words=encoded.dictionary,
        slice_id=np.concatenate(per_field),
        word=tiled(word),
        doc=tiled(units.doc),
        value_a=tiled(value_a),
        value_b=tiled(value_b),
        valid=tiled(valid),
        raw_a=tiled(units.score_a),
        raw_b=tiled(units.score_b),
        top_a=tiled(top[0]),
        top_b=tiled(top[1]),
    )


@dataclass(frozen=True)
class Entries:
    """Per (slice, word, document) sums of a batch: what the tally and the bootstrap add up."""

    words: pa.Array
    slice_id: np.ndarray
    word: np.ndarray
    doc: np.ndarray
    valid: np.ndarray
    count: np.ndarray
    sum_a: np.ndarray
    sum_b: np.ndarray
    raw_a: np.ndarray
    raw_b: np.ndarray
    top_a: np.ndarray
    top_b: np.ndarray


def entries(obs: UnitWords, n_docs: int) -> Entries:
    """Sum a batch's observations per (slice, word, document)."""
    n_words = max(len(obs.words), 1)
    entry, at = np.unique((obs.slice_id * n_words + obs.word) * n_docs + obs.doc, return_inverse=True)
    n = len(entry)

    def total(values):
        return np.bincount(at, weights=values, minlength=n)

    return Entries(
        words=obs.words,
        slice_id=entry // (n_words * n_docs),
        word=entry // n_docs % n_words,
        doc=entry % n_docs,
        valid=total(obs.valid) > 0,
        count=total(np.ones(len(at))),
        sum_a=total(obs.value_a * obs.valid),
        sum_b=total(obs.value_b * obs.valid),
        raw_a=total(obs.raw_a),
        raw_b=total(obs.raw_b),
        top_a=total(obs.top_a) > 0,
        top_b=total(obs.top_b) > 0,
    )


class PairTally:
    """Exact per-(slice, word) sums and flip counts over the corpus (``TALLY_SCHEMA``)."""

    def __init__(self):
        self._sums = KeyedSums(TALLY_SCHEMA, ("slice_id", "word"))

    def add(self, e: Entries) -> None:
        """Add a batch's entries."""
        n_words = max(len(e.words), 1)
        pair, at = np.unique(e.slice_id * n_words + e.word, return_inverse=True)

        def total(values):
            return np.bincount(at, weights=values, minlength=len(pair))

        flips = {
            "sign_pos_to_neg": (e.raw_a > 0) & (e.raw_b < 0),
            "sign_neg_to_pos": (e.raw_a < 0) & (e.raw_b > 0),
            "topk_a_only": e.top_a & ~e.top_b,
            "topk_b_only": e.top_b & ~e.top_a,
        }
        self._sums.add(
            pa.table(
                {
                    "slice_id": pair // n_words,
                    "word": e.words.take(pa.array(pair % n_words)),
                    "n_docs": total(e.valid),
                    "n_occurrences": total(e.count * e.valid),
                    "sum_a": total(e.sum_a),
                    "sum_b": total(e.sum_b),
                    "flip_docs": total(np.ones(len(at))),
                    **{name: total(flag) for name, flag in flips.items()},
                }
            )
        )

    def table(self) -> pa.Table:
        """One row per (slice, word), sorted by slice id and word."""
        return self._sums.table()


def entry_table(e: Entries) -> pa.Table:
    """The entries of documents with values, for the bootstrap pass (``ENTRY_SCHEMA``; the caller adds
    the document keys)."""
    rows = np.flatnonzero(e.valid)
    return pa.table(
        {
            "slice_id": e.slice_id[rows],
            "word": e.words.take(pa.array(e.word[rows])),
            "sum_a": e.sum_a[rows],
            "sum_b": e.sum_b[rows],
            "count": e.count[rows],
        },
        schema=ENTRY_SCHEMA,
    )
