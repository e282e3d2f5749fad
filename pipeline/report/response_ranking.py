"""The least likely responses and response tokens of a response run, for the report.

Gathered in the report's one streaming pass over the token rows (``ResponseRanking.add`` per chunk
of whole documents), so they cover the whole run, not only the documents the page embeds, and
memory stays bounded: only the ``MAX_RANKED`` lowest documents by each ranking and the
``MAX_LOW_TOKENS`` lowest tokens are kept. Ties are broken by doc id (and position), so the result
does not depend on the order the runner wrote the files in.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from normxlogit.pipeline.report.run_reader import DocChunk

MAX_RANKED = 20  # documents per ranking (mean and sum of log p)
MAX_LOW_TOKENS = 25
BEFORE_CHARS = 40  # characters of the document's text shown before a low token


@dataclass(frozen=True)
class ResponseLogprob:
    """One response's log-probability under the model.

    Attributes:
        doc_id: the document.
        n_tokens: its response tokens (those with a ``target_logprob``).
        total: the sum of their log-probabilities, log p(response | context).
        mean: ``total / n_tokens``, the per-token figure that compares responses of any length.
    """

    doc_id: str
    n_tokens: int
    total: float
    mean: float


@dataclass(frozen=True)
class LowToken:
    """A response token the model found unlikely: ``target_logprob`` at its step.

    Attributes:
        doc_id, step, position: where it is (``response_step`` t: step t predicts it).
        token: its string as stored.
        logprob: log p(y_t | context).
        foil: the model's own alternative at that step (``--foil top`` runs), else None.
        char_start: where the token starts in the document's text.
        before: up to ``BEFORE_CHARS`` characters of the text before it (None without a documents table).
    """

    doc_id: str
    step: int
    position: int
    token: str
    logprob: float
    foil: str | None
    char_start: int
    before: str | None = None


def _lowest(values: np.ndarray, candidates: np.ndarray, limit: int) -> np.ndarray:
    """The ``candidates`` whose value is among the ``limit`` lowest, ties at the edge included."""
    if len(candidates) <= limit:
        return candidates
    edge = np.partition(values[candidates], limit - 1)[limit - 1]
    return candidates[values[candidates] <= edge]


@dataclass
class ResponseRanking:
    """The whole run's response counts, lowest responses by mean and by sum, and lowest tokens."""

    responses: int = 0
    tokens: int = 0
    has_foil: bool = False
    by_mean: list[ResponseLogprob] = field(default_factory=list)
    by_total: list[ResponseLogprob] = field(default_factory=list)
    lowest: list[LowToken] = field(default_factory=list)

    def add(self, chunk: DocChunk) -> None:
        """Take one chunk of whole documents into the counts and rankings (no-op outside response runs)."""
        c = chunk.columns
        if "segment" not in c:
            return
        logprob = c["target_logprob"]
        answer = (c["response_step"] > 0) & np.isfinite(logprob)
        starts = chunk.bounds[:-1]
        n = np.add.reduceat(answer.astype(np.int64), starts)
        total = np.add.reduceat(np.where(answer, logprob, 0.0), starts)
        mean = np.divide(total, n, out=np.full(len(n), np.nan), where=n > 0)
        docs = np.flatnonzero(n > 0)
        self.responses += len(docs)
        self.tokens += int(n.sum())
        ids = chunk.docs["doc_id"]
        for name, values in (("by_mean", mean), ("by_total", total)):
            kept = [
                ResponseLogprob(ids[i], int(n[i]), float(total[i]), float(mean[i]))
                for i in _lowest(values, docs, MAX_RANKED).tolist()
            ]
            key = "mean" if name == "by_mean" else "total"
            ranked = sorted(getattr(self, name) + kept, key=lambda r: (getattr(r, key), r.doc_id))
            setattr(self, name, ranked[:MAX_RANKED])
        self._add_tokens(chunk, answer)

    def _add_tokens(self, chunk: DocChunk, answer: np.ndarray) -> None:
        c = chunk.columns
        rows = _lowest(c["target_logprob"], np.flatnonzero(answer), MAX_LOW_TOKENS)
        doc = np.searchsorted(chunk.bounds, rows, side="right") - 1
        foils = c.get("foil")
        self.has_foil = self.has_foil or (foils is not None and bool((foils[answer] != "").any()))
        found = [
            LowToken(
                doc_id=chunk.docs["doc_id"][d],
                step=int(c["response_step"][r]),
                position=int(c["position"][r]),
                token=chunk.tokens["token"][r].as_py(),
                logprob=float(c["target_logprob"][r]),
                foil=(foils[r] or None) if foils is not None else None,
                char_start=int(c["char_start"][r]),
            )
            for r, d in zip(rows.tolist(), doc.tolist())
        ]
        ranked = sorted(self.lowest + found, key=lambda t: (t.logprob, t.doc_id, t.position))
        self.lowest = ranked[:MAX_LOW_TOKENS]

    def with_context(self, texts: dict[str, str]) -> None:
        """Give each low token the text before it, from its document's text (``texts``: doc_id -> text)."""
        self.lowest = [
            t if texts.get(t.doc_id) is None else replace(t, before=_before(texts[t.doc_id], t.char_start))
            for t in self.lowest
        ]


def _before(text: str, start: int) -> str:
    cut = text[max(0, start - BEFORE_CHARS) : start]
    return ("…" if start > BEFORE_CHARS else "") + cut
