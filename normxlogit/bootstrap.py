"""The document bootstrap: seeded per-document weights, percentile intervals, p- and q-values (numpy).

Tokens of one document are not independent (one topic, one author, one model state), so the unit
resampled is the document. Each replicate gives every document a weight, and a statistic is
recomputed from weighted per-document sums: a mean over documents is ``sum(w * value) / sum(w)``, a
mean over occurrences ``sum(w * score) / sum(w * count)``, a share ``sum(w * part) / sum(w * total)``.

Weights: the Poisson bootstrap. Document d gets an independent Poisson(1) weight in replicate b, a
pure function of (seed, the document's key, b): its key is a 64-bit hash of its ``doc_id``
(``document_keys``), the weight the inverse Poisson CDF of SplitMix64 output. So the weights of a
document do not depend on which other documents are in memory, the order or batching of the run,
or which worker of a pipeline sees it: sums are added a document (``StreamingReplicates``) or a
chunk (``normxlogit.pipeline.findings.bootstrap.ReplicateSums``) at a time and merged, and two
statistics over the same documents get the same weights for the same document, which makes their
differences paired.

Known behaviour: the Poisson bootstrap approximates the usual (multinomial) bootstrap, whose
replicates hold exactly n documents; here the number of documents drawn varies around n. For ratio
statistics (every statistic here is one) the varying total largely cancels, and the two agree as n
grows; with few documents the intervals are slightly wider. A replicate in which all documents of a
statistic get weight 0 (probability about e^-n for n documents) has no value: it is left out of the
percentiles and p-values (``nan``). Documents with the same ``doc_id`` get the same weights.

Intervals are percentile intervals (95% by default) of the replicates; the two-sided p-value of
``statistic == null`` is twice the smaller share of replicates on either side of ``null`` (with
the +1 correction), so its resolution is about 2 / (B + 1). The correction makes it slightly
conservative: at the edge a (1 - alpha) percentile interval can just exclude the null while p is
just above alpha (e.g. 975 of 1,000 replicates below 0: upper bound < 0, p = 0.052).
``q_values`` adjusts p-values by Benjamini-Hochberg.

No torch, no Beam: the findings commands (``normxlogit.pipeline.findings``) and ``evaluate``'s
faithfulness intervals (``normxlogit.faithfulness_intervals``) share it.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

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
# Documents a ``StreamingReplicates`` keeps before it weighs them in one product.
PENDING_DOCS = 256


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
    replicates (about the smallest alpha at which the (1 - alpha) percentile interval excludes ``null``;
    the +1 correction makes it slightly conservative).
    Rows without a valid replicate give nan.
    """
    replicates = np.atleast_2d(replicates)
    null = np.broadcast_to(np.asarray(null, dtype=np.float64), replicates.shape[:1])[:, None]
    valid = (~np.isnan(replicates)).sum(axis=-1)
    below = (replicates <= null).sum(axis=-1)
    above = (replicates >= null).sum(axis=-1)
    p = np.minimum(1.0, 2 * (1 + np.minimum(below, above)) / (valid + 1))
    return np.where(valid > 0, p, np.nan)


def json_number(value: float) -> float | None:
    """A figure as JSON writes it: nan (no document had a value) as None."""
    return None if math.isnan(value) else float(value)


def paired_difference(replicates: np.ndarray, value: float, level: float = DEFAULT_LEVEL) -> dict:
    """``{"difference", "ci": [low, high], "p"}`` of a paired difference: ``value`` its estimate,
    ``replicates`` (B,) the method's replicate minus the baseline's on the same resampled documents."""
    low, high = percentile_interval(replicates, level)
    return {
        "difference": json_number(value),
        "ci": [json_number(low[0]), json_number(high[0])],
        "p": json_number(p_values(replicates)[0]),
    }


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


class StreamingReplicates:
    """Weighted sums of per-document value vectors in every replicate, a document at a time; mergeable.

    The state of a combine (a Beam ``CombineFn`` accumulator): each worker adds its documents and
    the partial states merge, in any order and split, into the sums of all documents. Documents
    wait in a buffer of at most ``PENDING_DOCS`` and are weighed together (one ``poisson_weights``
    call and one product), so adding costs no per-document pass over the B replicates. Memory:
    ``rows x B`` float64 plus the buffer.

    Attributes:
        resampling: replicates and seed.
        sums: (rows, B) sum over documents of weight * values.
        weights: (B,) sum over documents of weight: the weighted number of documents.
    """

    def __init__(self, rows: int, resampling: Resampling):
        self.resampling = resampling
        self.sums = np.zeros((rows, resampling.replicates))
        self.weights = np.zeros(resampling.replicates)
        self._keys: list[int] = []
        self._values: list[np.ndarray] = []

    def add(self, key: int, values: np.ndarray) -> None:
        """Add one document's (rows,) values under its key (``document_keys``)."""
        values = np.asarray(values, dtype=np.float64).reshape(-1)
        if values.shape != self.sums.shape[:1]:
            raise ValueError(f"expected {self.sums.shape[0]} values per document, got {values.shape[0]}")
        self._keys.append(int(key))
        self._values.append(values)
        if len(self._keys) >= PENDING_DOCS:
            self.flush()

    def flush(self) -> None:
        """Weigh the buffered documents into ``sums`` and ``weights``."""
        if not self._keys:
            return
        weights = poisson_weights(np.array(self._keys, dtype=np.uint64), self.resampling)  # (n, B)
        self.sums += np.stack(self._values, axis=1) @ weights
        self.weights += weights.sum(axis=0)
        self._keys, self._values = [], []

    def merge(self, other: StreamingReplicates) -> None:
        """Add another partial state (the same rows and resampling); ``other`` is left as it is."""
        if other.resampling != self.resampling or other.sums.shape != self.sums.shape:
            raise ValueError("merging replicate sums of another shape or resampling")
        self.sums += other.sums
        self.weights += other.weights
        for key, values in zip(other._keys, other._values):
            self.add(key, values)

    def means(self) -> np.ndarray:
        """(rows, B) weighted means over documents per replicate; nan where no document was drawn."""
        self.flush()
        return ratio_replicates(self.sums, np.broadcast_to(self.weights, self.sums.shape))
