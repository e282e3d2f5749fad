"""The document bootstrap: seeded resampling of documents, percentile intervals, p- and q-values.

Tokens of one document are not independent (one topic, one author, one model state), so the unit
resampled is the document. Each replicate gives every document a weight, and a statistic is
recomputed from weighted per-document sums: a mean over occurrences is ``sum(w * score) /
sum(w * count)``, a share ``sum(w * part) / sum(w * total)``.

Weights: the Poisson bootstrap. Document d gets an independent Poisson(1) weight in replicate b, a
pure function of (seed, the document's key, b): its key is a 64-bit hash of its ``doc_id``
(``document_keys``), the weight the inverse Poisson CDF of SplitMix64 output. So the weights of a
document do not depend on which other documents are in memory, the order or batching of the run,
or which chunk of a large corpus is being processed: a corpus is summed chunk by chunk
(``ReplicateSums``), the weights of at most ``DOCS_PER_CHUNK`` documents in memory at once, and two
runs over the same documents (``compare``) get the same weights for the same document, which makes
their differences paired.

Known behaviour: the Poisson bootstrap approximates the usual (multinomial) bootstrap, whose
replicates hold exactly n documents; here the number of documents drawn varies around n. For ratio
statistics (every statistic here is one) the varying total largely cancels, and the two agree as n
grows; with few documents the intervals are slightly wider. A replicate in which all documents of a
statistic get weight 0 (probability about e^-n for n documents) has no value: it is left out of the
percentiles and p-values (``nan``). Documents with the same ``doc_id`` get the same weights.

Intervals are percentile intervals (95% by default) of the replicates; the two-sided p-value of
``statistic == null`` is twice the smaller share of replicates on either side of ``null`` (with
the +1 correction), the smallest alpha at which the (1 - alpha) percentile interval excludes the
null, so its resolution is about 2 / (B + 1). ``q_values`` adjusts p-values by Benjamini-Hochberg.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
from scipy import sparse

DEFAULT_REPLICATES = 1000
DEFAULT_LEVEL = 0.95
# Poisson(1) CDF at 0..20; P(K > 20) < 1e-19, below the 2**-53 resolution of the uniforms.
_POISSON_CDF = np.cumsum([math.exp(-1) / math.factorial(k) for k in range(21)])
_GAMMA = np.uint64(0x9E3779B97F4A7C15)  # SplitMix64's increment
_CELL_BITS = 16


def _inverse_cdf_table() -> np.ndarray:
    """The Poisson(1) draw of each cell of the top ``_CELL_BITS`` bits of a 53-bit uniform, or -1 for
    the few cells a step of the CDF crosses (those are looked up exactly): a table lookup gives the
    same draw as ``searchsorted`` on the CDF, many times faster."""
    cells = np.arange(2**_CELL_BITS, dtype=np.float64)
    lowest = cells * 2.0**-_CELL_BITS
    highest = ((cells + 1) * 2.0 ** (53 - _CELL_BITS) - 1) * 2.0**-53
    low, high = (np.searchsorted(_POISSON_CDF, u, side="right") for u in (lowest, highest))
    return np.where(low == high, low, -1).astype(np.int8)


_INVERSE_CDF = _inverse_cdf_table()
# Rows of weighted sums computed in one sparse product: bounds the temporary (rows x B) array.
_ROWS_PER_PRODUCT = 2048
# Documents weighted at once: bounds the (documents x B) weights, whatever the documents' lengths (a chunk
# of word rows holds as many documents as words when each document is one word).
DOCS_PER_CHUNK = 2048


@dataclass(frozen=True)
class Resampling:
    """How intervals are drawn: ``replicates`` (B) document-bootstrap replicates from ``seed``."""

    replicates: int = DEFAULT_REPLICATES
    seed: int = 0
    level: float = DEFAULT_LEVEL

    def __post_init__(self) -> None:
        if self.replicates < 1 or self.seed < 0 or not 0 < self.level < 1:
            raise ValueError(f"replicates >= 1, seed >= 0 and 0 < level < 1, got {self}")

    def describe(self) -> str:
        """What the intervals are, in words (for reports and ``summary.json``)."""
        return (
            f"{self.level:.0%} percentile interval, document bootstrap (Poisson(1) weight per document), "
            f"B={self.replicates}, seed {self.seed}"
        )


@dataclass(frozen=True)
class Interval:
    """Point estimates with their percentile intervals and two-sided bootstrap p-values.

    Attributes:
        estimate: (k,) the statistic on the documents as they are (every weight 1).
        low, high: (k,) the interval; nan where no replicate has a value.
        p_value: (k,) two-sided p-value of ``statistic == null`` (see ``p_values``).
    """

    estimate: np.ndarray
    low: np.ndarray
    high: np.ndarray
    p_value: np.ndarray


def document_keys(doc_ids: Iterable[str] | pa.Array | pa.ChunkedArray) -> np.ndarray:
    """(n,) uint64 key of each document: the first 8 bytes of blake2b(doc_id), big-endian.

    The same hash as the report's sample (``run_reader.doc_hash``), so it is stable across runs,
    machines and Python versions.
    """
    if isinstance(doc_ids, pa.ChunkedArray | pa.Array):  # a slice at a time: few Python strings alive
        step = 1 << 16
        parts = [document_keys(doc_ids.slice(a, step).to_pylist()) for a in range(0, len(doc_ids), step)]
        return np.concatenate(parts) if parts else np.zeros(0, np.uint64)
    digests = b"".join(hashlib.blake2b(d.encode("utf-8"), digest_size=8).digest() for d in doc_ids)
    return np.frombuffer(digests, dtype=">u8").astype(np.uint64)


def _splitmix(z: np.ndarray) -> np.ndarray:
    """SplitMix64's output function (a bijection of uint64; wraps on overflow)."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def poisson_weights(
    keys: np.ndarray, resampling: Resampling, first: int = 0, stop: int | None = None
) -> np.ndarray:
    """(n, stop - first) float64 Poisson(1) weights of documents ``keys`` in replicates ``first:stop``
    (default: all B).

    Weight (d, b) depends only on (seed, keys[d], b): the b-th output of a SplitMix64 stream whose
    state is a hash of the seed and the key, turned into a Poisson(1) draw by its inverse CDF.
    """
    stop = resampling.replicates if stop is None else stop
    keys = np.asarray(keys, dtype=np.uint64)
    seed = _splitmix(np.array([resampling.seed], dtype=np.uint64) + _GAMMA)
    state = _splitmix(keys ^ seed)
    steps = np.arange(first + 1, stop + 1, dtype=np.uint64) * _GAMMA
    bits = _splitmix(state[:, None] + steps[None, :]) >> np.uint64(11)  # a uniform in 53 bits
    draw = _INVERSE_CDF[(bits >> np.uint64(53 - _CELL_BITS)).view(np.int64)]
    crossed = np.flatnonzero(draw < 0)
    draw.flat[crossed] = np.searchsorted(_POISSON_CDF, bits.flat[crossed] * 2.0**-53, side="right")
    return draw.astype(np.float64)


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


def ratio_replicates(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """``numerator / denominator`` elementwise, nan where the denominator is 0 (no document drawn)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denominator != 0, numerator / np.where(denominator != 0, denominator, 1), np.nan)


def percentile_interval(
    replicates: np.ndarray, level: float = DEFAULT_LEVEL
) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) percentile interval over the last axis (``np.quantile``'s linear interpolation); nan
    replicates are left out, and a row without any valid replicate gives nan."""
    ordered = np.sort(np.atleast_2d(replicates), axis=-1)  # nan last
    valid = (~np.isnan(ordered)).sum(axis=-1)
    tail = (1 - level) / 2
    bounds = []
    for q in (tail, 1 - tail):
        at = np.maximum(valid - 1, 0) * q
        below = np.floor(at).astype(np.intp)
        above = np.minimum(below + 1, np.maximum(valid - 1, 0))
        a = np.take_along_axis(ordered, below[:, None], axis=-1)[:, 0]
        b = np.take_along_axis(ordered, above[:, None], axis=-1)[:, 0]
        bounds.append(np.where(valid > 0, a + (b - a) * (at - below), np.nan))
    return bounds[0], bounds[1]


def p_values(replicates: np.ndarray, null: float | np.ndarray = 0.0) -> np.ndarray:
    """Two-sided bootstrap p-value of ``statistic == null`` per row of ``replicates`` (rows, B).

    ``min(1, 2 * (1 + min(#below-or-equal, #above-or-equal)) / (B' + 1))`` over the B' valid
    replicates: the smallest alpha at which the (1 - alpha) percentile interval excludes ``null``.
    Rows without a valid replicate give nan.
    """
    replicates = np.atleast_2d(replicates)
    null = np.broadcast_to(np.asarray(null, dtype=np.float64), replicates.shape[:1])[:, None]
    valid = (~np.isnan(replicates)).sum(axis=-1)
    below = (replicates <= null).sum(axis=-1)
    above = (replicates >= null).sum(axis=-1)
    p = np.minimum(1.0, 2 * (1 + np.minimum(below, above)) / (valid + 1))
    return np.where(valid > 0, p, np.nan)


def q_values(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (false discovery rate) of one family; nan stays nan and is
    not counted in the family."""
    p = np.asarray(p, dtype=np.float64)
    q = np.full(p.shape, np.nan)
    tested = np.flatnonzero(~np.isnan(p))
    m = tested.size
    if m == 0:
        return q
    order = tested[np.argsort(p[tested], kind="stable")]
    scaled = p[order] * m / np.arange(1, m + 1)
    q[order] = np.minimum(1.0, np.minimum.accumulate(scaled[::-1])[::-1])
    return q


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
