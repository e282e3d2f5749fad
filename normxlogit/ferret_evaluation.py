"""ferret's and Carton et al.'s metrics of a batch of texts: the rows they read, and their values.

``ferret_scalars`` builds, for every ranking of every text, ferret's removal rows
(``ferret_faithfulness.removal_rows``), the text's leave-one-out rows (``taucorr_loo``, texts up to
``--loo-max-tokens``) and its empty input (``norm_compr``/``norm_suff``), reads them all through one
``predict`` call (``evaluation.predict_rows``: token-budget batches), and turns the probabilities into
each ranking's values. Definitions, and where they differ from ferret's: ``ferret_faithfulness``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from normxlogit.encoding import EncodedText
from normxlogit.ferret_faithfulness import (
    EMPTY_AOPC,
    SCALAR_METRICS,
    aopc,
    ferret_rationales,
    leave_one_out_rows,
    normalised,
    removal_rows,
    taucorr_loo,
)


def _unique_rows(rows: Sequence[np.ndarray]) -> tuple[list[np.ndarray], np.ndarray]:
    """The distinct rows and, per row, the index of its copy among them."""
    index: dict[bytes, int] = {}
    inverse = [index.setdefault(r.tobytes(), len(index)) for r in rows]
    unique: list = [None] * len(index)
    for r, i in zip(rows, inverse):
        unique[i] = r
    return unique, np.array(inverse, dtype=np.int64)


def ferret_scalars(
    predict: Callable[[list[np.ndarray], np.ndarray], np.ndarray],
    batch: Sequence[EncodedText],
    scores: Sequence[np.ndarray],
    predictions: np.ndarray,
    probs: np.ndarray,
    drops: Sequence[np.ndarray],
    replacement: int,
    loo_max_tokens: int,
) -> list[tuple[np.ndarray, bool]]:
    """ferret's and Carton et al.'s metrics of every ranking of every text (``ferret_faithfulness``).

    Every text's removal rows (ferret's rationales of every ranking), leave-one-out rows (texts of at
    most ``loo_max_tokens`` rankable tokens) and its empty input (every ranked token replaced)
    are read in token-budget batches; a text's identical rows are read once, and a row with no token
    left (a text without special tokens, all removed) is not read: its value is left out.

    Args:
        predict: p(target) of the model on token-id rows (``predict_rows`` in token-budget batches).
        batch: the texts (their ``input_ids`` and ``special``).
        scores: per text, (M', n) the scores of each ranking (``method_scores``).
        predictions, probs: (B,) y_hat and p(y_hat | x).
        drops: per text, (M', 2, K) the mask-variant drops (normalised by the empty input's).

    Returns:
        Per text, ((M', len(SCALAR_METRICS)) values, nan where none; whether leave-one-out was skipped).
    """
    rows, targets, plans = [], [], []
    for b, (enc, doc_scores) in enumerate(zip(batch, scores)):
        ids = np.asarray(enc.input_ids, dtype=np.int64)
        positions = np.flatnonzero(~np.asarray(enc.special, dtype=bool))
        doc_rows, spans = [], []
        for s in doc_scores:
            compr, suff = removal_rows(ids, positions, ferret_rationales(np.asarray(s)[positions]))
            spans.append((len(doc_rows), len(compr)))
            doc_rows += compr + suff
        loo = 0 < len(positions) <= loo_max_tokens
        loo_at = len(doc_rows)
        if loo:
            doc_rows += leave_one_out_rows(ids, positions)
        ranked = np.ones(len(ids), dtype=bool)
        ranked[0] = not enc.special[0]  # the paper's ranking: every token but a first special one
        doc_rows.append(np.where(ranked, replacement, ids))
        unique, inverse = _unique_rows(doc_rows)
        plans.append((len(rows), inverse, positions, spans, loo_at if loo else None))
        rows += unique
        targets += [predictions[b]] * len(unique)
    readable = [i for i, r in enumerate(rows) if len(r)]
    values = np.full(len(rows), np.nan)
    if readable:
        values[readable] = predict([rows[i] for i in readable], np.asarray(targets, dtype=np.int64)[readable])
    out = []
    empty = (EMPTY_AOPC["aopc_compr"], EMPTY_AOPC["aopc_suff"])
    for b, (offset, inverse, positions, spans, loo_at) in enumerate(plans):
        p = values[offset + inverse]
        doc = np.full((len(spans), len(SCALAR_METRICS)), np.nan)
        for j, (start, count) in enumerate(spans):
            doc[j, :2] = aopc(probs[b], p[start : start + count], p[start + count : start + 2 * count], empty)
            if loo_at is not None:
                doc[j, 2] = taucorr_loo(
                    probs[b], p[loo_at : loo_at + len(positions)], scores[b][j][positions]
                )
            doc[j, 3:] = normalised(drops[b][j, 0], drops[b][j, 1], probs[b] - p[-1])
        out.append((doc, loo_at is None and len(positions) > loo_max_tokens))
    return out
