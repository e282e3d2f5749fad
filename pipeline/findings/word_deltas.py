"""words.parquet and flips.parquet of ``compare``: per (slice, word), each run's mean, their difference
with a paired document-bootstrap interval, ranks, and the documents where the word flips.

A word's value in a run is the mean over its occurrences of its (unit) score, standardised within
each document by default (z-score over the document's aligned units, per run: two models' scores
are on different scales). ``delta = mean_b - mean_a``. Both means are ratios of per-document sums,
and every document's Poisson weight (``bootstrap.poisson_weights``, a function of its doc_id) moves
both runs' sums at once, so the interval of ``delta`` is paired. Under ``standardise`` a document
with fewer than 2 aligned units, or whose scores are all equal in either run, has no z-scores and
is left out of the means (not of the flips, which use raw scores). Words in fewer than ``min_docs``
documents get no interval, p-value, q-value or rank; ranks are 1 for the highest mean in the slice
(ties share the smaller rank); q-values are Benjamini-Hochberg within a slice.

Flips count documents: ``sign_pos_to_neg`` those where the word's summed raw score is > 0 in A and
< 0 in B (``sign_neg_to_pos`` the reverse); ``topk_a_only`` those where one of its occurrences is
in A's top-k of the document and none is in B's (``topk_b_only`` the reverse).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from normxlogit.pipeline.findings.bootstrap import (
    DOCS_PER_CHUNK,
    ReplicateSums,
    Resampling,
    p_values,
    percentile_interval,
    q_values,
    ratio_replicates,
)
from normxlogit.pipeline.findings.paired import FLIP_COLUMNS
from normxlogit.pipeline.findings.partitions import KEY
from normxlogit.pipeline.findings.replicates import SUMS_PER_ROW, WordBlock, word_blocks
from normxlogit.pipeline.findings.slices import Slices

WORDS_SCHEMA = pa.schema(
    [
        pa.field("slice_field", pa.string()),
        pa.field("slice", pa.string()),
        pa.field("word", pa.string()),
        pa.field("n_docs", pa.int64()),
        pa.field("n_occurrences", pa.int64()),
        pa.field("mean_a", pa.float64()),
        pa.field("mean_b", pa.float64()),
        pa.field("delta", pa.float64()),
        pa.field("delta_ci_low", pa.float64()),
        pa.field("delta_ci_high", pa.float64()),
        pa.field("p_value", pa.float64()),
        pa.field("q_value", pa.float64()),
        pa.field("rank_a", pa.int64()),
        pa.field("rank_b", pa.int64()),
    ]
)
FLIPS_SCHEMA = pa.schema(
    [pa.field("slice_field", pa.string()), pa.field("slice", pa.string()), pa.field("word", pa.string())]
    + [pa.field("n_docs", pa.int64())]
    + [pa.field(c, pa.int64()) for c in FLIP_COLUMNS]
)


@dataclass(frozen=True)
class SpilledEntries:
    """Spilled entries read back, shaped as ``WordBlock.rows_of`` reads them."""

    words: pa.Array
    word: np.ndarray
    slice_id: np.ndarray

    @classmethod
    def of(cls, table: pa.Table) -> SpilledEntries:
        encoded = pc.dictionary_encode(table["word"].combine_chunks())
        return cls(
            encoded.dictionary, encoded.indices.to_numpy().astype(np.int64), table["slice_id"].to_numpy()
        )


class PairedSums:
    """Replicate sums of a block's rows: each run's summed value and the occurrences."""

    def __init__(self, block: WordBlock, resampling: Resampling):
        self.block = block
        self.sums = ReplicateSums(SUMS_PER_ROW * len(block), resampling)

    def add(self, table: pa.Table, doc: np.ndarray, keys: np.ndarray) -> None:
        """Add spilled entries (``ENTRY_SCHEMA``) of documents ``doc`` (indexes into ``keys``)."""
        picked, rows = self.block.rows_of(SpilledEntries.of(table))
        values = [table[name].to_numpy()[picked] for name in ("sum_a", "sum_b", "count")]
        self.sums.add(
            np.concatenate([rows * SUMS_PER_ROW + k for k in range(SUMS_PER_ROW)]),
            np.tile(doc[picked], SUMS_PER_ROW),
            np.concatenate(values),
            keys,
        )

    def delta_intervals(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(low, high, p-value) of ``mean_b - mean_a`` for each row of the block."""
        r = self.sums.replicates
        low, high, p = (np.full(len(self.block), np.nan) for _ in range(3))
        for a in range(0, len(self.block), 1024):  # bounds the (rows x B) temporaries
            rows = np.arange(a, min(a + 1024, len(self.block)))
            sum_a, sum_b, count = (r[rows * SUMS_PER_ROW + k] for k in range(SUMS_PER_ROW))
            delta = ratio_replicates(sum_b, count) - ratio_replicates(sum_a, count)
            low[rows], high[rows] = percentile_interval(delta, self.sums.resampling.level)
            p[rows] = p_values(delta)
        return low, high, p


def slice_columns(slices: Slices, slice_id: np.ndarray) -> dict[str, pa.Array]:
    """``slice_field`` and ``slice`` of each slice id."""
    field_of = np.asarray(slices.field_of)[slice_id]
    return {
        "slice_field": pa.array(np.asarray(slices.fields, dtype=object)[field_of], pa.string()),
        "slice": pa.array([slices.labels[i] for i in slice_id.tolist()], pa.string()),
    }


def ranks(slice_id: np.ndarray, values: np.ndarray, ranked: np.ndarray) -> np.ndarray:
    """1-based rank of each ``ranked`` row's value within its slice, highest first (ties share the
    smallest rank); -1 for rows not ranked."""
    out = np.full(len(values), -1, np.int64)
    rows = np.flatnonzero(ranked)
    if not len(rows):
        return out
    s, v = slice_id[rows], values[rows]
    order = np.lexsort((-v, s))
    s, v = s[order], v[order]
    index = np.arange(len(rows))
    new_slice = np.r_[True, s[1:] != s[:-1]]
    first_of_tie = new_slice | np.r_[True, v[1:] != v[:-1]]
    slice_start = np.maximum.accumulate(np.where(new_slice, index, 0))
    out[rows[order]] = np.maximum.accumulate(np.where(first_of_tie, index, 0)) - slice_start + 1
    return out


def slice_q_values(slice_id: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg q-values of ``p`` within each slice (nan: not tested)."""
    q = np.full(len(p), np.nan)
    order = np.argsort(slice_id, kind="stable")
    bounds = np.flatnonzero(np.r_[True, np.diff(slice_id[order]) != 0, True])
    for a, b in zip(bounds[:-1], bounds[1:]):
        q[order[a:b]] = q_values(p[order[a:b]])
    return q


def word_tables(
    tally: pa.Table,
    entry_parts: Callable[[], Iterable[pa.Table]],
    slices: Slices,
    min_docs: int,
    resampling: Resampling,
) -> tuple[pa.Table, pa.Table]:
    """words.parquet and flips.parquet from the tally (``paired.PairTally``) and, for the words in at least
    ``min_docs`` documents, the bootstrap: one pass over ``entry_parts()`` (the spilled entries, whole
    documents in each table, ``paired.ENTRY_SCHEMA`` plus ``partitions.KEY``) per block of words."""
    n_docs = tally["n_docs"].to_numpy()
    eligible = n_docs >= min_docs
    low, high, p = (np.full(tally.num_rows, np.nan) for _ in range(3))
    for block in word_blocks(tally, eligible, len(slices), resampling):
        sums = PairedSums(block, resampling)
        for table in entry_parts():
            keys, doc = np.unique(table[KEY].to_numpy(), return_inverse=True)
            order = np.argsort(doc, kind="stable")
            table, doc = table.take(pa.array(order)), doc[order]
            bounds = np.searchsorted(doc, np.arange(0, len(keys) + DOCS_PER_CHUNK, DOCS_PER_CHUNK))
            for first, (a, b) in enumerate(zip(bounds[:-1], bounds[1:])):
                base = first * DOCS_PER_CHUNK
                sums.add(table.slice(a, b - a), doc[a:b] - base, keys[base : base + DOCS_PER_CHUNK])
        low[block.source_row], high[block.source_row], p[block.source_row] = sums.delta_intervals()
    slice_id = tally["slice_id"].to_numpy()
    n_occurrences = tally["n_occurrences"].to_numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_a = tally["sum_a"].to_numpy() / n_occurrences
        mean_b = tally["sum_b"].to_numpy() / n_occurrences
    rank_a, rank_b = (ranks(slice_id, m, eligible) for m in (mean_a, mean_b))
    q = slice_q_values(slice_id, np.where(eligible, p, np.nan))
    words = pa.table(
        {
            **slice_columns(slices, slice_id),
            "word": tally["word"],
            "n_docs": n_docs,
            "n_occurrences": n_occurrences,
            "mean_a": mean_a,
            "mean_b": mean_b,
            "delta": mean_b - mean_a,
            "delta_ci_low": pa.array(low, from_pandas=True),
            "delta_ci_high": pa.array(high, from_pandas=True),
            "p_value": pa.array(p, from_pandas=True),
            "q_value": pa.array(q, from_pandas=True),
            "rank_a": pa.array(rank_a, mask=rank_a < 0),
            "rank_b": pa.array(rank_b, mask=rank_b < 0),
        },
        schema=WORDS_SCHEMA,
    ).filter(pa.array(n_docs > 0))
    return words, flips_table(tally, slices)


def flips_table(tally: pa.Table, slices: Slices) -> pa.Table:
    """flips.parquet: the (slice, word) rows of the tally with a flip, most flips first within a slice."""
    flips = np.stack([tally[c].to_numpy() for c in FLIP_COLUMNS], axis=1)
    rows = np.flatnonzero(flips.sum(axis=1) > 0)
    slice_id = tally["slice_id"].to_numpy()[rows]
    order = np.lexsort((-flips[rows].sum(axis=1), slice_id))
    rows, slice_id = rows[order], slice_id[order]
    return pa.table(
        {
            **slice_columns(slices, slice_id),
            "word": tally["word"].take(pa.array(rows)),
            "n_docs": tally["flip_docs"].take(pa.array(rows)),
            **{c: tally[c].take(pa.array(rows)) for c in FLIP_COLUMNS},
        },
        schema=FLIPS_SCHEMA,
    )
