"""Per-document agreement of two runs' scores of the same aligned words, vectorised over documents.

The aligned units of a batch of documents come grouped by document: ``doc`` (n,) sorted ascending,
the document's index in the batch (0 .. n_docs - 1), units in text order within it. Each run's unit
scores are ranked within their document once (``document_ranks``, one sort); every figure is read
from the ranks, one float64 per document, NaN where it is undefined:

- ``spearman``: Pearson's correlation of the average ranks (ties share their mean rank; the same
  as ``scipy.stats.spearmanr``). NaN for fewer than 2 units or when either run's scores are all
  equal.
- ``kendall_tau_b``: Kendall's tau-b, which corrects for ties in either run (the same as
  ``scipy.stats.kendalltau``). NaN as for ``spearman``.
- ``topk_jaccard``: |top-k of A ∩ top-k of B| / |union|, the top k by score, ties broken by
  position (the earlier unit first). NaN for k or fewer units, where both top-k sets are the whole
  document and agree by construction.
- ``sign_agreement``: the share of units whose scores have the same sign (0 is its own sign).
  NaN for no units.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Kendall's tau is computed from all pairs of a document's units at once for documents up to this
# many units (padded to a power of two, blocks of at most _PAIR_BUDGET pairs); longer ones (rare:
# documents of thousands of words) go through scipy one at a time, O(n log n) each.
_MAX_PAIRWISE = 1024
_PAIR_BUDGET = 1 << 21


def _starts(doc: np.ndarray, n_docs: int) -> tuple[np.ndarray, np.ndarray]:
    counts = np.bincount(doc, minlength=n_docs)
    return counts, np.cumsum(counts) - counts


@dataclass(frozen=True)
class DocumentRanks:
    """One run's unit scores ranked within each document (arrays of one length, in unit order).

    Attributes:
        average: 1-based ascending ranks, ties given their mean rank.
        dense: 0-based ascending dense ranks (equal scores, equal rank).
        from_top: 0-based place in descending order, ties to the earlier unit.
    """

    average: np.ndarray
    dense: np.ndarray
    from_top: np.ndarray

    def top_k(self, k: int) -> np.ndarray:
        """(n,) bool: the unit is among its document's ``k`` highest (ties: the earlier units)."""
        return self.from_top < k


def document_ranks(doc: np.ndarray, n_docs: int, values: np.ndarray) -> DocumentRanks:
    """Rank ``values`` within each document (see ``DocumentRanks``)."""
    n = len(doc)
    if n == 0:
        empty = np.zeros(0)
        return DocumentRanks(empty, empty.astype(np.int64), empty.astype(np.int64))
    counts, starts = _starts(doc, n_docs)
    order = np.lexsort((values, doc))  # stable: equal scores stay in unit (text) order
    d, v = doc[order], values[order]
    index = np.arange(n)
    new_doc = np.r_[True, d[1:] != d[:-1]]
    new_tie = new_doc | np.r_[True, v[1:] != v[:-1]]
    tie = np.cumsum(new_tie) - 1
    tie_first = np.flatnonzero(new_tie)
    tie_size = np.diff(np.r_[tie_first, n])
    first_place = (tie_first - starts[d[tie_first]])[tie]  # ascending place of the tie's first unit
    size = tie_size[tie]
    out = [np.empty(n), np.empty(n, np.int64), np.empty(n, np.int64)]
    out[0][order] = first_place + (size + 1) / 2
    out[1][order] = tie - np.maximum.accumulate(np.where(new_doc, tie, 0))
    out[2][order] = counts[d] - first_place - size + (index - tie_first[tie])
    return DocumentRanks(*out)


def _pearson(doc: np.ndarray, n_docs: int, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    counts = np.bincount(doc, minlength=n_docs)
    with np.errstate(invalid="ignore", divide="ignore"):
        dx = x - (np.bincount(doc, weights=x, minlength=n_docs) / counts)[doc]
        dy = y - (np.bincount(doc, weights=y, minlength=n_docs) / counts)[doc]
        vx = np.bincount(doc, weights=dx * dx, minlength=n_docs)
        vy = np.bincount(doc, weights=dy * dy, minlength=n_docs)
        r = np.bincount(doc, weights=dx * dy, minlength=n_docs) / np.sqrt(vx * vy)
    # Ranks are exact (halves), so a constant run gives a variance of exactly 0.
    return np.where((counts >= 2) & (vx > 0) & (vy > 0), np.clip(r, -1.0, 1.0), np.nan)


def spearman(doc: np.ndarray, n_docs: int, a: DocumentRanks, b: DocumentRanks) -> np.ndarray:
    """Spearman's rank correlation per document (see the module docstring)."""
    return _pearson(doc, n_docs, a.average, b.average)


def kendall_tau_b(doc: np.ndarray, n_docs: int, a: DocumentRanks, b: DocumentRanks) -> np.ndarray:
    """Kendall's tau-b per document (see the module docstring)."""
    counts, starts = _starts(doc, n_docs)
    out = np.full(n_docs, np.nan)
    position = np.arange(len(doc)) - starts[doc]
    width = np.maximum(8, 1 << np.ceil(np.log2(np.maximum(counts, 1))).astype(np.int64))
    pairwise = (counts >= 2) & (counts <= _MAX_PAIRWISE)
    for m in np.unique(width[pairwise]).tolist():
        docs = np.flatnonzero((width == m) & pairwise)
        block = max(1, _PAIR_BUDGET // (m * m))
        for first in range(0, len(docs), block):
            chosen = docs[first : first + block]
            out[chosen] = _tau_b_padded(chosen, m, n_docs, doc, position, a.dense, b.dense)
    long = np.flatnonzero(counts > _MAX_PAIRWISE).tolist()
    if long:
        from scipy import stats  # here: importing scipy.stats takes about a second

        for d in long:
            rows = slice(starts[d], starts[d] + counts[d])
            out[d] = stats.kendalltau(a.dense[rows], b.dense[rows]).statistic  # tau is rank-invariant
    return out


def _tau_b_padded(docs, m, n_docs, doc, position, rx, ry) -> np.ndarray:
    """tau-b of ``docs`` from all ordered pairs of each, their ranks padded to ``m`` columns."""
    local = np.full(n_docs, -1)
    local[docs] = np.arange(len(docs))
    rows = np.flatnonzero(local[doc] >= 0)
    valid = np.zeros((len(docs), m), bool)
    px, py = np.zeros((len(docs), m), np.int32), np.zeros((len(docs), m), np.int32)
    at = (local[doc[rows]], position[rows])
    valid[at], px[at], py[at] = True, rx[rows], ry[rows]
    pair = valid[:, :, None] & valid[:, None, :]
    sx = np.sign(px[:, :, None] - px[:, None, :]).astype(np.int8) * pair
    sy = np.sign(py[:, :, None] - py[:, None, :]).astype(np.int8) * pair
    concordance = np.einsum("dij,dij->d", sx, sy, dtype=np.int64)
    untied_x = np.abs(sx).sum(axis=(1, 2), dtype=np.int64)
    untied_y = np.abs(sy).sum(axis=(1, 2), dtype=np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        tau = concordance / np.sqrt(untied_x.astype(np.float64) * untied_y)
    return np.where((untied_x > 0) & (untied_y > 0), np.clip(tau, -1.0, 1.0), np.nan)


def topk_jaccard(doc: np.ndarray, n_docs: int, a: DocumentRanks, b: DocumentRanks, k: int) -> np.ndarray:
    """Jaccard similarity of the two runs' top-k units per document (see the module docstring)."""
    in_a, in_b = a.top_k(k), b.top_k(k)
    counts = np.bincount(doc, minlength=n_docs)
    both = np.bincount(doc, weights=in_a & in_b, minlength=n_docs)
    either = np.bincount(doc, weights=in_a | in_b, minlength=n_docs)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > k, both / either, np.nan)


def sign_agreement(doc: np.ndarray, n_docs: int, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The share of a document's units whose two scores have the same sign."""
    counts = np.bincount(doc, minlength=n_docs)
    same = np.bincount(doc, weights=np.sign(x) == np.sign(y), minlength=n_docs)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, same / counts, np.nan)
