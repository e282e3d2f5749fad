"""Corpus summary statistics without Beam: per-document extraction and a bounded, mergeable accumulator.

A group is a slice of the corpus (all of it, one prediction, one target, one source). Its
``GroupStats`` holds document/token/word counts, a fixed-bin histogram of token scores and, per
word and per token text, the running sum and count of their scores.

Memory is bounded by design: the histogram has fixed bins (symmetric log scale, the same edges for
every group and worker, so histograms add), and each vocabulary keeps at most ``2 * capacity``
entries. When it reaches that size it is pruned to the ``capacity`` most frequent entries (ties:
the larger total), a frequency-based heavy-hitters sketch. Entries that survive every pruning keep
exact sums and counts; a rare word pruned early and seen again restarts from zero. With at most
``capacity`` distinct words in a group nothing is ever pruned and all figures are exact. The
final top-K lists rank by total score and by mean score (words seen at least ``min_count`` times,
so one lucky occurrence does not top the list).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

CORPUS, PREDICTION, TARGET, SOURCE = "corpus", "prediction", "target", "source"
# Bin edges at +-10**(k / BINS_PER_DECADE) for |score| in [10**MIN_DECADE, 10**MAX_DECADE); bin 0 is
# (-10**MIN_DECADE, 10**MIN_DECADE); the outermost bins catch everything beyond.
BINS_PER_DECADE, MIN_DECADE, MAX_DECADE = 20, -3, 6
_SIDE = BINS_PER_DECADE * (MAX_DECADE - MIN_DECADE)
N_BINS = 2 * _SIDE + 1
DEFAULT_CAPACITY = 2000


@dataclass
class DocContribution:
    """What one document adds to its groups: its words and tokens with their scores."""

    words: list[str]
    word_scores: np.ndarray
    tokens: list[str]
    token_scores: np.ndarray
    token_bins: np.ndarray


@dataclass
class GroupStats:
    """Mergeable statistics of one group; see the module docstring for the memory bound."""

    docs: int = 0
    tokens: int = 0
    words: int = 0
    histogram: np.ndarray = field(default_factory=lambda: np.zeros(N_BINS, dtype=np.int64))
    word_totals: dict[str, list[float]] = field(default_factory=dict)
    token_totals: dict[str, list[float]] = field(default_factory=dict)


def histogram_bins(scores: np.ndarray) -> np.ndarray:
    """Fixed-bin index (0..N_BINS-1) of each score on the symmetric log scale."""
    mag = np.abs(scores.astype(np.float64))
    with np.errstate(divide="ignore"):
        level = np.floor((np.log10(np.maximum(mag, 1e-300)) - MIN_DECADE) * BINS_PER_DECADE) + 1
    level = np.clip(np.where(mag < 10.0**MIN_DECADE, 0, level), 0, _SIDE).astype(np.int64)
    return _SIDE + np.sign(scores).astype(np.int64) * level


def bin_edges(index: int) -> tuple[float, float]:
    """The (low, high) score range of histogram bin ``index``; outermost bins are open-ended."""
    level = index - _SIDE
    if level == 0:
        return -(10.0**MIN_DECADE), 10.0**MIN_DECADE
    inner = 10.0 ** (MIN_DECADE + (abs(level) - 1) / BINS_PER_DECADE)
    outer = np.inf if abs(level) == _SIDE else 10.0 ** (MIN_DECADE + abs(level) / BINS_PER_DECADE)
    return (inner, outer) if level > 0 else (-outer, -inner)


def doc_contribution(
    tokens: list[str],
    char_start: np.ndarray,
    char_end: np.ndarray,
    word_index: np.ndarray,
    special: np.ndarray,
    score: np.ndarray,
    text: str | None = None,
) -> DocContribution:
    """Words and tokens of one document with their scores (special tokens left out).

    A word's score is the sum of its tokens' scores (NormXLogit scores add along a word); its text
    is the document text from its first token's start to its last token's end, stripped. Without
    the text (token rows alone) it is the concatenation of its tokens, which is the same span when
    the tokens are contiguous, as they are inside a word.

    Args:
        tokens: (n,) token strings. char_start, char_end, word_index, special, score: (n,) arrays,
            with ``word_index`` -1 for tokens that belong to no word.
        text: the document text, when known.
    """
    keep = ~special
    kept = np.flatnonzero(keep)
    token_texts = [tokens[i].strip() for i in kept]
    in_word = kept[word_index[kept] >= 0]
    words: list[str] = []
    word_scores = np.zeros(0, dtype=np.float64)
    if in_word.size:
        ids = word_index[in_word]
        starts = np.flatnonzero(np.concatenate(([True], ids[1:] != ids[:-1])))
        word_scores = np.add.reduceat(score[in_word].astype(np.float64), starts)
        ends = np.append(starts[1:], in_word.size) - 1
        if text is None:
            words = ["".join(tokens[i] for i in in_word[s : e + 1]).strip() for s, e in zip(starts, ends)]
        else:
            spans = zip(char_start[in_word[starts]], char_end[in_word[ends]])
            words = [text[a:b].strip() for a, b in spans]
    keep_tokens = np.array([bool(t) for t in token_texts], dtype=bool)
    token_scores = score[kept][keep_tokens].astype(np.float64)
    return DocContribution(
        words=words,
        word_scores=word_scores,
        tokens=[t for t, k in zip(token_texts, keep_tokens) if k],
        token_scores=token_scores,
        token_bins=histogram_bins(token_scores),
    )


def add_doc(stats: GroupStats, doc: DocContribution, capacity: int = DEFAULT_CAPACITY) -> GroupStats:
    """Add one document to ``stats`` (in place) and return it."""
    stats.docs += 1
    stats.tokens += len(doc.tokens)
    stats.words += len(doc.words)
    stats.histogram += np.bincount(doc.token_bins, minlength=N_BINS)
    _add_totals(stats.word_totals, doc.words, doc.word_scores.tolist(), capacity)
    _add_totals(stats.token_totals, doc.tokens, doc.token_scores.tolist(), capacity)
    return stats


def merge_stats(parts: list[GroupStats], capacity: int = DEFAULT_CAPACITY) -> GroupStats:
    """One ``GroupStats`` holding all of ``parts`` (the first part is reused)."""
    out = parts[0] if parts else GroupStats()
    for part in parts[1:]:
        out.docs += part.docs
        out.tokens += part.tokens
        out.words += part.words
        out.histogram = out.histogram + part.histogram
        for mine, theirs in ((out.word_totals, part.word_totals), (out.token_totals, part.token_totals)):
            for key, (total, count) in theirs.items():
                entry = mine.setdefault(key, [0.0, 0])
                entry[0] += total
                entry[1] += count
            _prune(mine, capacity)
    return out


def _add_totals(totals: dict[str, list[float]], keys: list[str], scores: list[float], capacity: int) -> None:
    for key, value in zip(keys, scores):
        entry = totals.setdefault(key, [0.0, 0])
        entry[0] += value
        entry[1] += 1
    _prune(totals, capacity)


def _prune(totals: dict[str, list[float]], capacity: int) -> None:
    """Keep the ``capacity`` most frequent entries once there are ``2 * capacity``."""
    if len(totals) < 2 * capacity:
        return
    ranked = sorted(totals.items(), key=lambda kv: (-kv[1][1], -kv[1][0], kv[0]))
    totals.clear()
    totals.update(ranked[:capacity])


def top_entries(totals: dict[str, list[float]], k: int, by: str, min_count: int = 3) -> list[dict]:
    """The ``k`` entries with the highest total (``by="total"``) or mean score (``by="mean"``).

    Returns:
        Dicts with ``text``, ``count``, ``total``, ``mean``; ties broken by text, so the result is
        deterministic. For ``mean``, entries seen fewer than ``min_count`` times are left out
        unless no entry reaches it.
    """
    rows = [(text, int(c), float(t), float(t) / c) for text, (t, c) in totals.items()]
    if by == "mean":
        frequent = [r for r in rows if r[1] >= min_count]
        rows = frequent or rows
    col = 2 if by == "total" else 3
    rows.sort(key=lambda r: (-r[col], r[0]))
    return [{"text": t, "count": c, "total": s, "mean": m} for t, c, s, m in rows[:k]]


def summarize_group(kind: str, name: str, stats: GroupStats, k: int = 20) -> dict:
    """The JSON-ready summary of one group: counts, histogram, top words and tokens."""
    nonzero = np.flatnonzero(stats.histogram)
    bins = []
    if nonzero.size:
        for i in range(int(nonzero[0]), int(nonzero[-1]) + 1):
            lo, hi = bin_edges(i)
            bins.append({"low": _finite(lo), "high": _finite(hi), "count": int(stats.histogram[i])})
    return {
        "kind": kind,
        "group": name,
        "docs": stats.docs,
        "tokens": stats.tokens,
        "words": stats.words,
        "histogram": bins,
        "top_words_by_total": top_entries(stats.word_totals, k, "total"),
        "top_words_by_mean": top_entries(stats.word_totals, k, "mean"),
        "top_tokens_by_total": top_entries(stats.token_totals, k, "total"),
        "top_tokens_by_mean": top_entries(stats.token_totals, k, "mean"),
    }


def _finite(edge: float) -> float | None:
    """A bin edge for JSON: None for an open end."""
    return None if np.isinf(edge) else float(edge)


def group_keys(prediction: str, target: str, source: str) -> list[tuple[str, str]]:
    """The groups a document belongs to: the corpus, its prediction, its target and its source."""
    return [(CORPUS, ""), (PREDICTION, prediction), (TARGET, target), (SOURCE, source)]
