"""Plausibility: agreement of attribution scores with human rationales, on words (numpy only).

A record's rationale marks the words a person says justify its label: a list of 0/1, one per word,
or a list of character spans ``[[start, end], ...]`` (a word is in the rationale when it overlaps
a span). Words are those of ``words.WORD`` (runs of word characters, or single other non-space
characters), the split ``EncodedText.word_index`` gives each token. A word's score is the sum of its
tokens' scores (special tokens belong to no word). Words no token reaches (cut by truncation) are
left out of both the scores and the rationale.

The metrics are ferret's (g8a9/ferret, ``ferret/evaluators/plausibility_measures.py`` and
``utils_from_soft_to_discrete.py``, version 0.4.2), with its defaults ``only_pos=True`` and
``remove_first_last=True`` (our words hold no special token, which is what removing [CLS] and
[SEP] does there):

- ``auprc_plau``: the area under the precision-recall curve of the scores against the rationale,
  negative scores set to 0 first: sklearn's ``precision_recall_curve`` and the trapezoidal
  ``auc(recall, precision)``. (This is not average precision, the step-wise sum: ferret integrates
  with trapezoids.)
- ``token_f1_plau``: the top k words by score, only those with a positive score, against the
  rationale: F1 of that set (0 when no word was chosen, or none is right).
- ``token_iou_plau``: |chosen & rationale| / |chosen | rationale| of the same set.

Where we differ from ferret: (1) ferret scores tokens against a token-level rationale; we score
words, summing tokens; (2) k: ferret's ``evaluate_samples`` takes one k for the whole dataset, the
dataset's average rationale size (``top_k_rationale``, default 5); we take each record's own rationale
length by default, or a fixed ``k`` when asked; (3) ties at the k-th place: we take the later word
first, what ferret's ``argsort()[-k:][::-1]`` does under a stable sort; ferret uses numpy's default
sort, which is not stable, so on such ties its choice depends on numpy's sort implementation (in a
trial with integer scores, 9 of 500 cases differed from ferret this way; scores without ties agree);
(4) a record whose rationale marks no word has no figure here (ferret would score it); it is counted
instead.
"""

from __future__ import annotations

import json
import numbers
from dataclasses import dataclass

import numpy as np

from normxlogit.errors import RecordError
from normxlogit.words import WORD

PLAUSIBILITY_METRICS: tuple[str, ...] = ("auprc_plau", "token_f1_plau", "token_iou_plau")
MALFORMED_RATIONALE = "malformed_rationale"
RATIONALE_LENGTH_MISMATCH = "rationale_length_mismatch"
SCORED, MISSING, EMPTY = "scored", "missing", "empty"


def word_spans(text: str) -> np.ndarray:
    """(W, 2) character spans of the text's words (``words.WORD``), in order."""
    spans = [m.span() for m in WORD.finditer(text)]
    return np.array(spans, dtype=np.int64).reshape(-1, 2)


def _is_flag(value: object) -> bool:
    return isinstance(value, numbers.Integral) and int(value) in (0, 1)


def _is_span(value: object) -> bool:
    return (
        isinstance(value, list | tuple)
        and len(value) == 2
        and all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in value)
    )


def rationale_words(value: object, text: str) -> np.ndarray:
    """A record's rationale as one flag per word of ``text``.

    Args:
        value: the rationale field's value: a list of 0/1 (or booleans), one per word; a list of
            ``[start, end]`` character spans (end exclusive); or either one as a JSON string (a CSV
            cell). An empty list marks no word.

    Returns:
        (W,) bool, W the number of words of ``text``.

    Raises:
        RecordError: ``malformed_rationale`` (not a list, mixed or other entries, a span outside the
            text or empty), ``rationale_length_mismatch`` (a 0/1 list whose length is not W).
    """
    spans = word_spans(text)
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise RecordError(
                MALFORMED_RATIONALE, "the rationale is a string that is not a JSON list"
            ) from None
    if not isinstance(value, list | tuple):
        raise RecordError(
            MALFORMED_RATIONALE,
            f"the rationale holds a {type(value).__name__}; give a list of 0/1 per word or of "
            "[start, end] character spans",
        )
    if not value:
        return np.zeros(len(spans), dtype=bool)
    if all(_is_flag(v) for v in value):
        if len(value) != len(spans):
            raise RecordError(
                RATIONALE_LENGTH_MISMATCH,
                f"the rationale has {len(value)} flags but the text has {len(spans)} words (words: runs "
                "of letters, digits and _, or single punctuation characters)",
            )
        return np.array([int(v) for v in value], dtype=bool)
    if not all(_is_span(v) for v in value):
        raise RecordError(
            MALFORMED_RATIONALE,
            "the rationale mixes or holds entries that are neither 0/1 flags nor [start, end] spans",
        )
    marks = np.array(value, dtype=np.int64).reshape(-1, 2)
    bad = (marks[:, 0] < 0) | (marks[:, 0] >= marks[:, 1]) | (marks[:, 1] > len(text))
    if bad.any():
        start, end = marks[np.argmax(bad)]
        raise RecordError(
            MALFORMED_RATIONALE,
            f"the rationale span [{start}, {end}] is empty or outside the text ({len(text)} characters)",
        )
    overlaps = (spans[:, None, 0] < marks[None, :, 1]) & (marks[None, :, 0] < spans[:, None, 1])
    return overlaps.any(axis=1)


def word_scores(scores: np.ndarray, word_index: np.ndarray, words: int) -> tuple[np.ndarray, np.ndarray]:
    """Each word's score: the sum of its tokens' scores.

    Args:
        scores: (M, n) one row of token scores per method.
        word_index: (n,) each token's word, -1 for special and whitespace-only tokens.
        words: W, the text's number of words.

    Returns:
        ((M, W) word scores, (W,) bool: some token reaches the word).
    """
    scores = np.atleast_2d(np.asarray(scores, dtype=np.float64))
    index = np.asarray(word_index, dtype=np.int64)
    keep = index >= 0
    out = np.zeros((scores.shape[0], words))
    np.add.at(out, (slice(None), index[keep]), scores[:, keep])
    return out, np.bincount(index[keep], minlength=words) > 0


def pr_auc(scores: np.ndarray, truth: np.ndarray) -> float:
    """Trapezoidal area under the precision-recall curve, as ``sklearn.metrics.auc(recall, precision)``
    of ``precision_recall_curve(truth, scores)``: one point per distinct score, plus (recall 0,
    precision 1). ``truth`` must hold a positive."""
    order = np.argsort(scores, kind="mergesort")[::-1]
    ranked, hits = scores[order], truth[order].astype(np.float64)
    last = np.r_[np.flatnonzero(np.diff(ranked)), ranked.size - 1]  # the last of each run of ties
    tps = np.cumsum(hits)[last]
    precision = np.r_[(tps / (last + 1))[::-1], 1.0]
    recall = np.r_[(tps / tps[-1])[::-1], 0.0]
    return float(np.sum((recall[:-1] - recall[1:]) * (precision[:-1] + precision[1:]) / 2))


def top_k_words(scores: np.ndarray, k: int) -> np.ndarray:
    """(W,) bool: the k highest-scoring words with a positive score (ferret's ``only_pos`` top k);
    at a tie the later word first, as ``argsort()[-k:][::-1]`` on a stable sort."""
    chosen = np.argsort(scores, kind="stable")[::-1][:k]
    mask = np.zeros(scores.shape[0], dtype=bool)
    mask[chosen[scores[chosen] > 0]] = True
    return mask


def token_f1(chosen: np.ndarray, truth: np.ndarray) -> float:
    """F1 of the chosen words against the rationale; 0 when none is chosen or none is right."""
    tp = int((chosen & truth).sum())
    if tp == 0:
        return 0.0
    precision, recall = tp / int(chosen.sum()), tp / int(truth.sum())
    return 2 * precision * recall / (precision + recall)


def token_iou(chosen: np.ndarray, truth: np.ndarray) -> float:
    """|chosen & rationale| / |chosen | rationale|; 0 when both are empty."""
    union = int((chosen | truth).sum())
    return int((chosen & truth).sum()) / union if union else 0.0


def plausibility_row(scores: np.ndarray, truth: np.ndarray, k: int | None = None) -> np.ndarray:
    """(3,) ``auprc_plau``, ``token_f1_plau``, ``token_iou_plau`` of one ranking of words.

    Args:
        scores: (W,) word scores.
        truth: (W,) bool rationale, with at least one word.
        k: words chosen for F1 and IoU; None: the rationale's length.
    """
    truth = np.asarray(truth, dtype=bool)
    chosen = top_k_words(scores, int(truth.sum()) if k is None else k)
    return np.array(
        [pr_auc(np.maximum(scores, 0.0), truth), token_f1(chosen, truth), token_iou(chosen, truth)]
    )


@dataclass(frozen=True)
class DocPlausibility:
    """One document's plausibility for every method.

    Attributes:
        status: ``scored``; ``missing`` (no rationale: null or absent field); ``empty`` (the rationale
            marks no word the model read).
        values: (M, 3) the metrics of ``PLAUSIBILITY_METRICS`` per method when scored, else None.
    """

    status: str
    values: np.ndarray | None = None


def doc_plausibility(
    scores: np.ndarray,
    word_index: np.ndarray,
    rationale: np.ndarray | None,
    rows: np.ndarray,
    k: int | None = None,
) -> DocPlausibility:
    """Plausibility of every method's scores of one document.

    Args:
        scores: (M', n) token scores, ``rows[i]`` consecutive rows for method i (random's seeds).
        word_index: (n,) each token's word (``EncodedText.word_index``).
        rationale: (W,) bool from ``rationale_words``, or None when the record has none.
        rows: (M,) rows per method; a method's figures are the mean over its rows.
        k: words chosen for F1 and IoU; None: the rationale's length (of the words the model read).
    """
    if rationale is None:
        return DocPlausibility(MISSING)
    words, reached = word_scores(scores, word_index, rationale.shape[0])
    truth = rationale[reached]
    if not truth.any():
        return DocPlausibility(EMPTY)
    per_row = np.stack([plausibility_row(row, truth, k) for row in words[:, reached]])
    starts = np.r_[0, np.cumsum(rows)[:-1]]
    return DocPlausibility(SCORED, np.add.reduceat(per_row, starts, axis=0) / np.asarray(rows)[:, None])
