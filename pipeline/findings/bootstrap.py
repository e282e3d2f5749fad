"""The document bootstrap of the findings commands: chunked replicate sums, medians, Arrow nulls.

The seeded per-document weights, percentile intervals and p- and q-values are
``normxlogit.bootstrap``'s (shared with ``evaluate``'s faithfulness intervals); this module re-exports
them, so that the findings modules import the whole bootstrap from one place, and adds what only the
findings need. A corpus is summed chunk by chunk (``ReplicateSums``), the weights of at most
``DOCS_PER_CHUNK`` documents in memory at once, and two runs over the same documents (``compare``)
get the same weights for the same document, which makes their differences paired.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from scipy import sparse

from normxlogit.bootstrap import (
    DEFAULT_LEVEL,
    DEFAULT_REPLICATES,
    Interval,
    Resampling,
    document_keys,
    p_values,
    percentile_interval,
    poisson_weights,
    q_values,
    ratio_replicates,
)

__all__ = [
    "DEFAULT_LEVEL",
    "DEFAULT_REPLICATES",
    "DOCS_PER_CHUNK",
    "Interval",
    "ReplicateSums",
    "Resampling",
    "document_keys",
    "median_interval",
    "nan_as_null",
    "p_values",
    "percentile_interval",
    "poisson_weights",
    "q_values",
    "ratio_replicates",
]

# Rows of weighted sums computed in one sparse product: bounds the temporary (rows x B) array.
_ROWS_PER_PRODUCT = 2048
# Documents weighted at once: bounds the (documents x B) weights, whatever the documents' lengths (a chunk
# of word rows holds as many documents as words when each document is one word).
DOCS_PER_CHUNK = 2048


class ReplicateSums:
    """Per-row sums of per-document values, as they are and in every replicate, added chunk by chunk.

    A row is one quantity (a word's score in a slice, its occurrences, a slice's absolute score);
    each chunk of documents adds sparse entries (row, document, value). Memory: ``rows x B``
    float64 plus the weights of at most ``DOCS_PER_CHUNK`` documents.

    Attributes:
        totals: (rows,) the sums with every weight 1.
        replicates: (rows, B) the weighted sums of each replicate.
    """

    def __init__(self, rows: int, resampling: Resampling):
        self.resampling = resampling
        self.totals = np.zeros(rows)
        self.replicates = np.zeros((rows, resampling.replicates))

    def add(self, row: np.ndarray, doc: np.ndarray, value: np.ndarray, keys: np.ndarray) -> None:
        """Add a chunk's entries; the same (row, document) may repeat (its values add).

        The entries are taken by document, ``DOCS_PER_CHUNK`` distinct documents at a time, so the
        weights in memory do not grow with the number of documents in the chunk.

        Args:
            row: (entries,) row of each entry.
            doc: (entries,) document of each entry, an index into ``keys``.
            value: (entries,) float values.
            keys: (documents,) the chunk's document keys (``document_keys``).
        """
        if len(row) == 0:
            return
        value = np.asarray(value, dtype=np.float64)
        self.totals += np.bincount(row, weights=value, minlength=len(self.totals))
        order = np.argsort(doc, kind="stable")
        row, doc, value = np.asarray(row)[order], np.asarray(doc)[order], value[order]
        new_doc = np.r_[True, doc[1:] != doc[:-1]]
        nth_doc = np.cumsum(new_doc) - 1  # among the documents with entries
        firsts = np.flatnonzero(new_doc)
        bounds = np.r_[firsts[::DOCS_PER_CHUNK], len(doc)]
        for part, (a, b) in enumerate(zip(bounds[:-1], bounds[1:])):
            present = doc[firsts[part * DOCS_PER_CHUNK : (part + 1) * DOCS_PER_CHUNK]]
            weights = poisson_weights(keys[present], self.resampling)
            self._add_weighted(row[a:b], nth_doc[a:b] - part * DOCS_PER_CHUNK, value[a:b], weights)

    def _add_weighted(self, row: np.ndarray, doc: np.ndarray, value: np.ndarray, weights: np.ndarray) -> None:
        """Add entries of the documents whose weights (documents, B) are ``weights``."""
        rows, local = np.unique(row, return_inverse=True)
        matrix = sparse.csr_matrix((value, (local, doc)), shape=(len(rows), len(weights)))
        for a in range(0, len(rows), _ROWS_PER_PRODUCT):
            self.replicates[rows[a : a + _ROWS_PER_PRODUCT]] += matrix[a : a + _ROWS_PER_PRODUCT] @ weights


def median_interval(values: np.ndarray, keys: np.ndarray, resampling: Resampling) -> Interval:
    """The median over documents of per-document values (n,), e.g. a per-document agreement.

    Each replicate's median is the weighted median (the smallest value whose cumulative weight
    reaches half the total); the point estimate is ``np.median``. The p-value tests ``median == 0``.
    """
    values = np.asarray(values, dtype=np.float64)
    if len(values) == 0:  # no document has a value: nothing to estimate
        nothing = np.array([np.nan])
        return Interval(nothing, nothing, nothing, nothing)
    order = np.argsort(values, kind="stable")
    sorted_values, sorted_keys = values[order], np.asarray(keys)[order]
    medians = np.full(resampling.replicates, np.nan)
    step = max(1, 2**21 // max(len(values), 1))  # replicates per block: bounds (n x block) weights
    for a in range(0, resampling.replicates, step):
        b = min(a + step, resampling.replicates)
        weights = poisson_weights(sorted_keys, resampling, a, b)
        cumulative = np.cumsum(weights, axis=0)
        total = cumulative[-1]
        drawn = total > 0
        at = np.argmax(cumulative >= total / 2, axis=0)
        medians[a:b] = np.where(drawn, sorted_values[np.minimum(at, len(values) - 1)], np.nan)
    low, high = percentile_interval(medians, resampling.level)
    return Interval(np.array([np.median(values)]), low, high, p_values(medians))


def nan_as_null(values):
    """A figure array for Arrow with nan as null (a figure that could not be computed is missing, not a
    number); other values pass through."""
    if isinstance(values, np.ndarray) and values.dtype.kind == "f":
        return pa.array(values, mask=np.isnan(values))
    return values
