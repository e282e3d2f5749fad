"""``normxlogit show --token``: the response token a user names, and the step that predicts it.

Step t of a response run predicts response token y_t (its ``response_step``), so "why this token?"
is step t's attribution. A user names the token by its string, as stored (``' Charles'``) or as
``show`` lists it (``␣Charles``, ``\\n``), and picks one of several equal tokens with an occurrence.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from normxlogit.display import VISIBLE_SPACE, visible_token

# Word-start markers of SentencePiece (▁) and byte-level BPE vocabularies (Ġ), and a plain space.
_WORD_START = " \u2581\u0120"
_TYPED_ESCAPES = {VISIBLE_SPACE: " ", "\\n": "\n", "\\t": "\t", "\\r": "\r"}


class TokenError(ValueError):
    """``--token`` names no response token of the document, or the document is not a response."""


@dataclass(frozen=True)
class TokenMatch:
    """One response token picked by ``--token TEXT --occurrence N``.

    Attributes:
        token: its string as stored in the token rows.
        step: its ``response_step`` t; step t predicts it.
        position: its position in the document.
        logprob: log p(y_t | context), None where the run did not store it.
        occurrence: N, 1-based, among the response tokens that match.
        occurrences: how many response tokens match.
        exact: False when only the loose comparison (word-start markers stripped) matched.
    """

    token: str
    step: int
    position: int
    logprob: float | None
    occurrence: int
    occurrences: int
    exact: bool

    def describe(self, query: str) -> str:
        """One line: which token ``query`` matched, and which of its occurrences this is."""
        shown = visible_token(query)
        matched = "" if self.exact else f"no response token is exactly {shown}; matched "
        return (
            f"--token {shown}: {matched}{visible_token(self.token)}, occurrence {self.occurrence} of "
            f"{self.occurrences} in the response"
        )

    def location(self) -> str:
        """Where the token is: the step that predicts it, its position and log-probability."""
        odds = "" if self.logprob is None else f", log p {self.logprob:.4g}"
        return f"predicted at step {self.step} (position {self.position}{odds})"


def _typed(query: str) -> str:
    """``query`` with ``show``'s visible forms (``␣``, ``\\n``, ``\\t``, ``\\r``) as characters again."""
    for shown, char in _TYPED_ESCAPES.items():
        query = query.replace(shown, char)
    return query


def _loose(token: str) -> str:
    """``token`` without its word-start markers and edge whitespace: ``' Charles'`` -> ``'Charles'``."""
    return token.strip().lstrip(_WORD_START).strip()


def find_response_token(rows: pa.Table, query: str, occurrence: int = 1) -> TokenMatch:
    """The ``occurrence``-th response token (in position order) whose string is ``query``.

    ``query`` is compared as given and with ``show``'s visible forms decoded; where no response token
    equals it, both sides are compared without word-start markers (space, ``▁``, ``Ġ``) and edge
    whitespace, and the match says so.

    Args:
        rows: one document's token rows in position order, with the response columns.
        query: the token's text.
        occurrence: which matching token, 1-based.

    Raises:
        TokenError: not a response document; no response token matches (the message names the
            nearest ones); fewer than ``occurrence`` match.
    """
    steps = rows["response_step"] if "response_step" in rows.column_names else None
    if steps is None or steps.null_count == rows.num_rows:
        raise TokenError(
            "--token applies to response runs (annotate with --response-field, --messages-field or "
            "--generate); this document has no response"
        )
    response = rows.filter(pc.is_valid(steps))
    tokens, at_step = response["token"].to_pylist(), response["response_step"].to_pylist()
    wanted = {query, _typed(query)}
    hits = [k for k, token in enumerate(tokens) if token in wanted]
    exact = bool(hits)
    loose = {_loose(w) for w in wanted} - {""}
    if not hits and loose:
        hits = [k for k, token in enumerate(tokens) if _loose(token) in loose]
    if not hits:
        raise TokenError(
            f"no response token is {visible_token(query)}; nearest: {_nearest(tokens, at_step, query)}"
        )
    if occurrence > len(hits):
        times = "once" if len(hits) == 1 else f"{len(hits)} times"
        raise TokenError(
            f"--occurrence {occurrence}: response token {visible_token(tokens[hits[0]])} occurs {times} "
            "in this response"
        )
    at = hits[occurrence - 1]
    return TokenMatch(
        token=tokens[at],
        step=at_step[at],
        position=response["position"][at].as_py(),
        logprob=response["target_logprob"][at].as_py() if "target_logprob" in response.column_names else None,
        occurrence=occurrence,
        occurrences=len(hits),
        exact=exact,
    )


def _nearest(tokens: list[str], steps: list[int], query: str, n: int = 5) -> str:
    """Up to ``n`` distinct response tokens nearest ``query`` (case and word-start markers ignored),
    each with the step of its first occurrence."""
    first: dict[str, int] = {}
    for token, step in zip(tokens, steps):
        first.setdefault(token, step)
    key = _loose(_typed(query)).lower()
    ranked = sorted(
        first, key=lambda t: (-difflib.SequenceMatcher(None, key, _loose(t).lower()).ratio(), first[t])
    )
    return ", ".join(f"{visible_token(t)} (step {first[t]})" for t in ranked[:n])
