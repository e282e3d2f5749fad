"""Faithfulness metrics of the paper's Experiment 1 (METHOD.md, "Faithfulness metrics"): pure numpy.

For one text of n tokens and one ranking of its tokens (largest score first; the first token left
out when it is a special token such as [CLS] or <s>), and for k in 10%..90%, m = floor(k * n):

- comprehensiveness replaces the top m ranked tokens with a replacement token (the mask token);
- sufficiency replaces every ranked token after the top m.

The attention mask and token types are unchanged. The confidence drop is
p(y_hat | x) - p(y_hat | x') with y_hat the original prediction (not clipped); accuracy is the
perturbed argmax against the gold label. Each reported figure is the mean over the 9 values of k
and over samples; ``CurveSums`` holds the sums and counts that give those means, and merges, so a
pipeline can aggregate it with a combine (``normxlogit.faithfulness_intervals`` adds their
document-bootstrap intervals).

The random baseline ranks each document R times, with seeds seed..seed+R-1 (``random_scores``), and
its figures for the document are the mean over the R rankings (``average_rows``): one random
ranking is a noisy baseline, and averaging per document keeps the document the unit of resampling.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace

import numpy as np

PERCENTS: tuple[int, ...] = tuple(range(10, 100, 10))
METRICS: tuple[str, ...] = ("comprehensiveness", "sufficiency")
REPLACEMENTS: tuple[str, ...] = ("mask", "unk", "pad")
RANDOM = "random"
DEFAULT_RANDOM_SEEDS = 3


def replacement_token(tokenizer) -> tuple[int, str]:
    """The token that stands in for removed tokens: mask, else unk, else pad (ours, for decoders).

    Returns:
        (token id, which one: ``"mask"``, ``"unk"`` or ``"pad"``).

    Raises:
        ValueError: the tokenizer has none of the three.
    """
    for kind in REPLACEMENTS:
        token_id = getattr(tokenizer, f"{kind}_token_id", None)
        if token_id is not None:
            return int(token_id), kind
    raise ValueError("the tokenizer has no mask, unk or pad token to replace removed tokens with")


def rank_tokens(scores: np.ndarray, skip_first: bool) -> np.ndarray:
    """Token positions by score, largest first (ties: earlier position first).

    Args:
        scores: (n,) one score per token.
        skip_first: leave position 0 out of the ranking (a [CLS] / <s> special token).

    Returns:
        (n,) or (n - 1,) int64 positions.
    """
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    return order[order != 0] if skip_first else order


def seeded_scores(n: int, seed: int, doc_id: str) -> np.ndarray:
    """Random scores for the random baseline, reproducible per (seed, document id).

    The generator is seeded from the document id, not from the order documents arrive in, so the
    same run gives the same rankings on any runner and with any batching.
    """
    digest = int.from_bytes(hashlib.sha256(doc_id.encode("utf-8")).digest()[:8], "little")
    return np.random.default_rng([seed, digest]).random(n)


def random_scores(n: int, seed: int, random_seeds: int, doc_id: str) -> np.ndarray:
    """(random_seeds, n) random baseline scores of one document, row r seeded with ``seed + r``.

    Row 0 is ``seeded_scores(n, seed, doc_id)``: one seed gives the single-ranking baseline.
    """
    return np.stack([seeded_scores(n, seed + r, doc_id) for r in range(random_seeds)])


def rows_per_method(methods: tuple[str, ...], random_seeds: int) -> np.ndarray:
    """(M,) how many rankings each method contributes: ``random_seeds`` for random, 1 for the others."""
    return np.array([random_seeds if m == RANDOM else 1 for m in methods], dtype=np.int64)


def removed_counts(n: int, percents: tuple[int, ...] = PERCENTS) -> np.ndarray:
    """(K,) m = floor(k * n) for every k, in exact integer arithmetic."""
    return np.asarray(percents, dtype=np.int64) * n // 100


def perturb(
    input_ids: np.ndarray,
    ranking: np.ndarray,
    replacement: int,
    percents: tuple[int, ...] = PERCENTS,
    base: int | None = None,
) -> np.ndarray:
    """Comprehensiveness and sufficiency variants of one text for every k.

    Args:
        input_ids: (n,) token ids, special tokens included.
        ranking: ranked positions from ``rank_tokens``; positions not in it are never replaced.
        replacement: id of the token that replaces removed tokens.
        base: m = floor(k * base); default n, every token (the paper's rule). Response-level
            faithfulness passes the number of ranked context tokens.

    Returns:
        (2, K, n) int64: ``[0, j]`` has the top m_j ranked tokens replaced (comprehensiveness),
        ``[1, j]`` every ranked token after the top m_j (sufficiency).
    """
    ids = np.asarray(input_ids, dtype=np.int64)
    n = ids.shape[0]
    rank_of = np.full(n, n, dtype=np.int64)  # n: not ranked (the skipped first token)
    rank_of[ranking] = np.arange(len(ranking))
    top = rank_of[None, :] < removed_counts(n if base is None else base, percents)[:, None]  # (K, n)
    rest = (rank_of < n)[None, :] & ~top
    return np.stack([np.where(top, replacement, ids), np.where(rest, replacement, ids)])


@dataclass(frozen=True)
class DocFaithfulness:
    """One document's faithfulness for every method, metric and k.

    Attributes:
        drop: (M, 2, K) float64 confidence drops p(y_hat|x) - p(y_hat|x').
        correct: (M, 2, K) bool, the perturbed prediction equals the gold label; for a response
            (``normxlogit.response_faithfulness``) the share of its tokens that stay the argmax; for
            random over several seeds (``average_rows``) the share of its rankings that are correct.
    """

    drop: np.ndarray
    correct: np.ndarray
    # ferret's and Carton et al.'s metrics and the diagnosticity hits (``normxlogit.ferret_faithfulness``):
    # scalars (M, S) one value per method and ``SCALAR_METRICS`` metric (nan: none), diagnostic (M, D)
    # per method the share of random rankings beaten on each ``DIAGNOSTIC_METRICS`` metric; None
    # where not measured. loo_skipped: the text was longer than the leave-one-out cap.
    scalars: np.ndarray | None = None
    diagnostic: np.ndarray | None = None
    loo_skipped: bool = False
    # Plausibility against the record's rationale (``normxlogit.plausibility.DocPlausibility``); None
    # without --rationale-field. Set after ``average_rows`` (it averages random's rows itself).
    plausibility: object | None = None


def doc_faithfulness(
    original_prob: float, masked_prob: np.ndarray, masked_pred: np.ndarray, gold: int
) -> DocFaithfulness:
    """Confidence drops and accuracy hits of one document.

    Args:
        original_prob: p(y_hat | x), y_hat the prediction on the whole text.
        masked_prob: (M, 2, K) p(y_hat | x') on each perturbed text.
        masked_pred: (M, 2, K) argmax on each perturbed text.
        gold: the gold label's id.
    """
    return DocFaithfulness(
        drop=float(original_prob) - np.asarray(masked_prob, dtype=np.float64),
        correct=np.asarray(masked_pred) == gold,
    )


def average_rows(doc: DocFaithfulness, rows: np.ndarray) -> DocFaithfulness:
    """One row per method from a document's figures with ``rows[i]`` consecutive rows for method i:
    each method's figures are the mean over its rows (random's seeds), its scalars the mean over
    those rows that have a value; ``diagnostic`` (already one row per method) is kept. Unchanged when
    every method has one row.

    Args:
        doc: (sum(rows), 2, K) figures.
        rows: (M,) rows per method (``rows_per_method``).
    """
    rows = np.asarray(rows, dtype=np.int64)
    if (rows == 1).all():
        return doc
    starts = np.r_[0, np.cumsum(rows)[:-1]]
    scale = rows[:, None, None].astype(np.float64)
    scalars = None
    if doc.scalars is not None:  # the mean over random's rankings that have a value
        present = ~np.isnan(doc.scalars)
        totals = np.add.reduceat(np.where(present, doc.scalars, 0.0), starts, axis=0)
        counts = np.add.reduceat(present.astype(np.float64), starts, axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            scalars = np.where(counts > 0, totals / counts, np.nan)
    return replace(
        doc,
        drop=np.add.reduceat(doc.drop, starts, axis=0) / scale,
        correct=np.add.reduceat(np.asarray(doc.correct, dtype=np.float64), starts, axis=0) / scale,
        scalars=scalars,
    )


@dataclass
class CurveSums:
    """Sums and counts per (method, metric, k): the state of a mergeable mean.

    Attributes:
        drop: (M, 2, K) summed confidence drops.
        correct: (M, 2, K) summed accuracy hits.
        samples: documents added.
    """

    drop: np.ndarray
    correct: np.ndarray
    samples: int = 0

    @classmethod
    def empty(cls, methods: int, ks: int = len(PERCENTS)) -> CurveSums:
        """Zero sums for ``methods`` methods and ``ks`` values of k."""
        shape = (methods, len(METRICS), ks)
        return cls(np.zeros(shape), np.zeros(shape), 0)

    def add(self, doc: DocFaithfulness) -> CurveSums:
        """Add one document in place; returns self."""
        self.drop += doc.drop
        self.correct += doc.correct
        self.samples += 1
        return self

    def merge(self, other: CurveSums) -> CurveSums:
        """Add another partial sum in place; returns self."""
        self.drop += other.drop
        self.correct += other.correct
        self.samples += other.samples
        return self

    def curve_rows(self, methods: tuple[str, ...], percents: tuple[int, ...] = PERCENTS) -> list[dict]:
        """Per-k means: one row per (method, metric, k) with drop, accuracy and samples."""
        n = max(self.samples, 1)
        return [
            {
                "method": method,
                "metric": metric,
                "k": pct / 100,
                "drop": float(self.drop[i, j, p] / n),
                "accuracy": float(self.correct[i, j, p] / n),
                "samples": self.samples,
            }
            for i, method in enumerate(methods)
            for j, metric in enumerate(METRICS)
            for p, pct in enumerate(percents)
        ]

    def summary(self, methods: tuple[str, ...]) -> dict:
        """``{"samples": N, "methods": {method: {metric: {"drop", "accuracy"}}}}``.

        Means over k and samples; null (None) when no sample was added.
        """
        n = self.samples * self.drop.shape[-1]

        def mean(total: float) -> float | None:
            return float(total / n) if n else None

        return {
            "samples": self.samples,
            "methods": {
                method: {
                    metric: {
                        "drop": mean(self.drop[i, j].sum()),
                        "accuracy": mean(self.correct[i, j].sum()),
                    }
                    for j, metric in enumerate(METRICS)
                }
                for i, method in enumerate(methods)
            },
        }
