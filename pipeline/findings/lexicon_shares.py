"""The lexicon table of ``stats``: per slice and category the share of absolute score on the
category's words, and its difference between two slices of a field, with document-bootstrap intervals.

A share is ``sum |score|`` of the category's words over that of all words of the slice (sums over
documents); a difference is share in ``slice`` minus share in ``versus``, both recomputed in each
replicate from the same document weights, with a two-sided p-value of ``difference == 0``.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from normxlogit.pipeline.findings.bootstrap import (
    nan_as_null,
    p_values,
    percentile_interval,
    ratio_replicates,
)
from normxlogit.pipeline.findings.lexicon import Lexicon
from normxlogit.pipeline.findings.replicates import MassSums
from normxlogit.pipeline.findings.slices import Slices

# Differences are drawn between every two slices of a field with at most this many slices.
MAX_COMPARED_SLICES = 50
_F, _I, _S = pa.float64(), pa.int64(), pa.string()
LEXICON_SCHEMA = pa.schema(
    [
        ("slice_field", _S),
        ("slice", _S),
        ("versus", _S),
        ("category", _S),
        ("n_docs", _I),
        ("n_occurrences", _I),
    ]
    + [(n, _F) for n in ("share", "share_ci_low", "share_ci_high")]
    + [(n, _F) for n in ("difference", "difference_ci_low", "difference_ci_high", "p_value")]
)


def lexicon_table(
    categories: pa.Table,
    slice_table: pa.Table,
    mass: MassSums,
    slices: Slices,
    min_docs: int,
    lexicon: Lexicon,
) -> pa.Table:
    """``LEXICON_SCHEMA`` rows: each slice's share per category, then its differences with the later
    slices of its field (``versus``), with intervals where both slices have ``min_docs`` documents.

    Args:
        categories: the tally's (slice, category) documents, occurrences and absolute score.
        slice_table: the tally's per-slice documents and absolute score.
        mass: the replicates of each slice's and (slice, category)'s absolute score.
    """
    level = mass.sums.resampling.level
    n_cat, n_slices = len(lexicon.categories), len(slices)
    present = slice_table["slice_id"].to_numpy()
    figures = {name: np.zeros((n_slices, n_cat)) for name in ("n_docs", "n_occurrences", "mass")}
    sid, cat = categories["slice_id"].to_numpy(), categories["category"].to_numpy()
    for name in figures:
        figures[name][sid, cat] = categories[name].to_numpy()
    totals = np.zeros(n_slices)
    totals[present] = slice_table["mass"].to_numpy()
    slice_docs = np.zeros(n_slices, np.int64)
    slice_docs[present] = slice_table["n_docs"].to_numpy()
    share = ratio_replicates(figures["mass"], totals[:, None])  # (slices, categories)
    share_reps = ratio_replicates(mass.categories, mass.slices[:, None, :])  # (slices, categories, B)
    supported = slice_docs >= min_docs
    low, high = (np.full((n_slices, n_cat), np.nan) for _ in range(2))
    for s in present[supported[present]]:
        low[s], high[s] = percentile_interval(share_reps[s], level)
    pairs = [(s, None) for s in present] + _compared_pairs(present, slices)
    rows: dict[str, list] = {name: [] for name in LEXICON_SCHEMA.names}
    for s, versus in pairs:
        diff = np.full((4, n_cat), np.nan)
        if versus is not None:
            diff[0] = share[s] - share[versus]
            if supported[s] and supported[versus]:
                reps = share_reps[s] - share_reps[versus]
                diff[1], diff[2] = percentile_interval(reps, level)
                diff[3] = p_values(reps)
        values = {
            "slice_field": [slices.fields[slices.field_of[s]]] * n_cat,
            "slice": [slices.labels[s]] * n_cat,
            "versus": [None if versus is None else slices.labels[versus]] * n_cat,
            "category": list(lexicon.categories),
            "n_docs": figures["n_docs"][s],
            "n_occurrences": figures["n_occurrences"][s],
            "share": share[s],
            "share_ci_low": low[s],
            "share_ci_high": high[s],
            "difference": diff[0],
            "difference_ci_low": diff[1],
            "difference_ci_high": diff[2],
            "p_value": diff[3],
        }
        for name, v in values.items():
            rows[name].extend(v.tolist() if isinstance(v, np.ndarray) else v)
    floats = {n for n in LEXICON_SCHEMA.names if LEXICON_SCHEMA.field(n).type == _F}
    table = pa.table(
        {n: (nan_as_null(np.asarray(v, np.float64)) if n in floats else v) for n, v in rows.items()},
        schema=LEXICON_SCHEMA,
    )
    return table.take(_lexicon_order(pairs, n_cat, slices))


def _lexicon_order(pairs: list[tuple[int, int | None]], n_cat: int, slices: Slices) -> np.ndarray:
    """Rows by field, slice label (null last), the slice's own row first then each versus, category."""

    def label(s: int) -> tuple:
        return (slices.labels[s] is None, slices.labels[s] or "")

    keys = [
        (slices.field_of[s], label(s), versus is not None, label(versus) if versus is not None else (), c)
        for s, versus in pairs
        for c in range(n_cat)
    ]
    return np.array(sorted(range(len(keys)), key=keys.__getitem__), dtype=np.int64)


def _compared_pairs(present: np.ndarray, slices: Slices) -> list[tuple[int, int]]:
    """(a, b) for every two present slices of a ``--by`` field, a's label before b's (nulls last)."""
    pairs = []
    for position in range(1, len(slices.fields)):
        ids = [int(s) for s in present if slices.field_of[s] == position]
        if len(ids) > MAX_COMPARED_SLICES:
            continue
        ids.sort(key=lambda s: (slices.labels[s] is None, slices.labels[s] or ""))
        pairs += [(a, b) for i, a in enumerate(ids) for b in ids[i + 1 :]]
    return pairs
