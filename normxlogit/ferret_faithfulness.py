"""ferret's faithfulness metrics, Carton et al.'s normalised ones, and diagnosticity (numpy, scipy).

ferret (g8a9/ferret, ``ferret-xai`` 0.4.2, ``ferret/evaluators/faithfulness_measures.py`` and
``utils_from_soft_to_discrete.py``) scores one explanation of one text as follows; this module does
the same on token ids, for one text of n tokens whose *rankable* tokens are its non-special ones:

- Rationales (``ferret_rationales``; ``utils_from_soft_to_discrete.py`` lines 9-30, defaults lines
  63-88): for each threshold t in ``np.arange(0.1, 1.1, 0.1)`` (10%..100%), v = int(t * n_r) with
  n_r the rankable tokens; the rationale is the top v tokens by score (``argsort`` of the scores)
  that have a score > 0 (``only_pos``). A threshold with v = 0, an empty rationale, or the same set
  as the last rationale kept is skipped (``faithfulness_measures.py`` lines 85-103).
- ``aopc_compr`` (lines 23-134): the mean over the kept rationales of p(y|x) - p(y|x without the
  rationale's tokens); 0 without any rationale. Higher is better.
- ``aopc_suff`` (lines 140-252): the mean of p(y|x) - p(y|only the rationale's tokens, in their
  order); 1 without any rationale. Lower is better.
- ``taucorr_loo`` (lines 258-324): Kendall's tau-b (``scipy.stats.kendalltau``) between the scores
  of the rankable tokens and their leave-one-out drops p(y|x) - p(y|x without that token). Higher
  is better. n_r extra forward passes per text; none (nan) when tau is undefined (fewer than two
  tokens, constant scores or drops).

Where we differ from ferret (the figures are otherwise the same; ``tests/normxlogit/
test_ferret_faithfulness.py`` checks them against ferret's procedure on a real tokenizer):

- Tokens are removed from the token ids; ferret decodes the remaining ids to a string and tokenizes
  it again, which can change the tokens at a seam (a removed word before "##ing"). On texts whose
  decode-retokenize round trip is exact the two agree.
- Rankable tokens are the non-special ones, wherever they are; ferret drops the first and last
  token (``remove_first_last``), the same for [CLS] text [SEP], not for a pair (its middle [SEP] is
  ranked and removable) nor for a tokenizer without both.
- y is the model's prediction on the whole text (as for every figure of ``evaluate``); ferret
  explains the ``target`` it is given.

The mask-token variant of the paper (``faithfulness``: k = 10%..90%, m = floor(k * n) tokens
replaced with the mask token, [CLS] left out) stays ``comprehensiveness``/``sufficiency``.

``norm_compr``/``norm_suff`` (Carton, Rathore and Tan, "Evaluating and Characterizing Human
Rationales", EMNLP 2020, Section 3.1) normalise that mask-token variant by the null difference, the
drop to the empty input (every ranked token replaced): with d = p(y|x) - p(y|x'),
null = p(y|x) - p(y|x_empty), Suff = 1 - max(0, d_suff), Comp = max(0, d_comp):

    NormComp = Comp / (1 - Suff_0) = max(0, d_comp) / null
    NormSuff = (Suff - Suff_0) / (1 - Suff_0) = 1 - max(0, d_suff) / null

each clipped to [0, 1] and averaged over k; no value where null <= 0 (the empty input does not lower
the prediction). Both are higher-is-better (NormSuff 1: the top k% alone keep the prediction).

Diagnosticity (Chan, Kong and Liang, "A Comparative Study of Faithfulness Metrics for Model
Interpretability Methods", ACL 2022, Section 3.1): the share of (document, random ranking) pairs
in which a metric prefers a method's explanation over a random one, strictly (a tie is not a
preference): 1(u >_m v) averaged over pairs. Random explanations are taken as less faithful than
any method's, so a metric whose diagnosticity is near 0.5 cannot tell an explanation from noise on
this model and data.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from normxlogit.faithfulness import DocFaithfulness

# ferret's default removal thresholds (utils_from_soft_to_discrete.py line 78), floats as ferret
# has them: int(t * n) equals floor(k * n / 10) for every n up to 5,000 (checked in the tests).
FERRET_THRESHOLDS: np.ndarray = np.arange(0.1, 1.1, 0.1)
AOPC_METRICS: tuple[str, ...] = ("aopc_compr", "aopc_suff")
SCALAR_METRICS: tuple[str, ...] = (*AOPC_METRICS, "taucorr_loo", "norm_compr", "norm_suff")
# Scalar metrics of a response run: ferret's AOPC on the response log-probability.
RESPONSE_SCALAR_METRICS: tuple[str, ...] = AOPC_METRICS
# +1: higher is better; -1: lower is better.
DIRECTION: dict[str, int] = {
    "comprehensiveness": 1,
    "sufficiency": -1,
    "aopc_compr": 1,
    "aopc_suff": -1,
    "taucorr_loo": 1,
    "norm_compr": 1,
    "norm_suff": 1,
}
DIAGNOSTIC_METRICS: tuple[str, ...] = ("comprehensiveness", "sufficiency", *SCALAR_METRICS)
DEFAULT_LOO_MAX_TOKENS = 256
# ferret's figures when no threshold gives a rationale (faithfulness_measures.py lines 121-122, 239-240).
EMPTY_AOPC = {"aopc_compr": 0.0, "aopc_suff": 1.0}


def ferret_rationales(scores: np.ndarray) -> list[np.ndarray]:
    """ferret's distinct rationales of one explanation: positions into ``scores``, largest score first.

    Args:
        scores: (n_r,) the scores of the rankable tokens.
    """
    scores = np.asarray(scores)
    n = len(scores)
    order = scores.argsort()  # ferret's argsort (default kind), so ties break as in ferret
    out, last = [], None
    for t in FERRET_THRESHOLDS:
        v = int(t * n)
        if not 0 < v <= n:
            continue
        top = np.array([i for i in order[-v:][::-1] if scores[i] > 0], dtype=np.int64)
        if top.size == 0 or (last is not None and set(top.tolist()) == last):
            continue
        last = set(top.tolist())
        out.append(top)
    return out


def removal_rows(
    input_ids: np.ndarray, positions: np.ndarray, rationales: Sequence[np.ndarray]
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The token-id rows ferret's AOPC reads, one per rationale.

    Args:
        input_ids: (n,) the text's token ids, special tokens included.
        positions: (n_r,) the rankable positions, in text order (the scores' positions).
        rationales: from ``ferret_rationales``, indices into ``positions``.

    Returns:
        (comprehensiveness rows: the rationale's tokens removed; sufficiency rows: every rankable
        token not in the rationale removed). Non-rankable tokens always stay.
    """
    ids = np.asarray(input_ids, dtype=np.int64)
    compr, suff = [], []
    for rationale in rationales:
        drop = np.zeros(len(ids), dtype=bool)
        drop[positions[rationale]] = True
        compr.append(ids[~drop])
        keep_only = np.zeros(len(ids), dtype=bool)
        keep_only[positions] = True
        keep_only[positions[rationale]] = False
        suff.append(ids[~keep_only])
    return compr, suff


def leave_one_out_rows(input_ids: np.ndarray, positions: np.ndarray) -> list[np.ndarray]:
    """One row per rankable position with that token removed."""
    ids = np.asarray(input_ids, dtype=np.int64)
    return [np.delete(ids, p) for p in positions]


def aopc(
    original: float, compr: np.ndarray, suff: np.ndarray, empty: tuple[float, float] = (0.0, 1.0)
) -> tuple[float, float]:
    """(aopc_compr, aopc_suff): the mean of ``original - value`` over the ``removal_rows``' values.

    Args:
        original: p(y|x) (or a response's mean log-probability).
        compr, suff: (r,) the value of each rationale's rows; nan where a row cannot be read (nothing
            left to read: it is left out of the mean).
        empty: the figures without any rationale (ferret's 0 and 1, ``EMPTY_AOPC``).
    """
    if len(compr) == 0:
        return empty
    out = []
    for values in (np.asarray(compr, dtype=np.float64), np.asarray(suff, dtype=np.float64)):
        values = values[~np.isnan(values)]
        out.append(float(np.mean(original - values)) if values.size else float("nan"))
    return out[0], out[1]


def taucorr_loo(original: float, loo_probs: np.ndarray, scores: np.ndarray) -> float:
    """Kendall's tau-b between the leave-one-out drops and the scores; nan where undefined."""
    from scipy.stats import kendalltau

    drops = original - np.asarray(loo_probs, dtype=np.float64)
    if len(drops) < 2:
        return float("nan")
    return float(kendalltau(drops, np.asarray(scores, dtype=np.float64)).statistic)


def normalised(drop_comp: np.ndarray, drop_suff: np.ndarray, null: float) -> tuple[float, float]:
    """(norm_compr, norm_suff) of Carton et al. from the per-k mask-variant drops and the null
    difference; nan, nan where null <= 0."""
    if not null > 0:
        return float("nan"), float("nan")
    comp = np.clip(np.maximum(0.0, drop_comp) / null, 0.0, 1.0)
    suff = np.clip(1.0 - np.maximum(0.0, drop_suff) / null, 0.0, 1.0)
    return float(comp.mean()), float(suff.mean())


def diagnostic_hits(values: np.ndarray, rows: np.ndarray, methods: Sequence[str], random: str) -> np.ndarray:
    """Per method, the share of random rankings its explanation beats on each metric of one document.

    Args:
        values: (M', D) the document's value of each ``DIAGNOSTIC_METRICS`` metric for every ranking,
            random's seeds as consecutive rows (``rows``); nan where a metric has no value.
        rows: (M,) rows per method (``faithfulness.rows_per_method``).
        methods: the method of each group of rows.
        random: the random method's name.

    Returns:
        (M, D): for every method other than random, the mean over random's rows with a value of
        1(the method's value is strictly better); nan for random itself, without random, or where
        the method or every random row has no value.
    """
    out = np.full((len(methods), values.shape[1]), np.nan)
    if random not in methods:
        return out
    starts = np.r_[0, np.cumsum(rows)[:-1]]
    r = list(methods).index(random)
    rand = values[starts[r] : starts[r] + rows[r]]  # (R, D)
    sign = np.array([DIRECTION[m] for m in DIAGNOSTIC_METRICS], dtype=np.float64)
    for i, method in enumerate(methods):
        if method == random:
            continue
        mine = values[starts[i]]  # (D,)
        better = (sign * (mine - rand) > 0).astype(np.float64)  # (R, D)
        valid = ~np.isnan(rand) & ~np.isnan(mine)
        with np.errstate(invalid="ignore"):
            out[i] = np.where(valid.any(0), (better * valid).sum(0) / valid.sum(0), np.nan)
    return out


def with_scalars(
    doc: DocFaithfulness,
    values: np.ndarray,
    loo_skipped: bool,
    methods: Sequence[str],
    rows: np.ndarray,
    random: str,
) -> DocFaithfulness:
    """A document's figures with its scalar metrics (M', S) and the diagnosticity hits they and its
    drops give (before ``faithfulness.average_rows``: random's seeds are the rankings each method is
    set against; the mask-variant figures are the mean drop over k)."""
    per_doc = np.concatenate([doc.drop.mean(axis=-1), values], axis=1)  # (M', DIAGNOSTIC_METRICS)
    hits = diagnostic_hits(per_doc, rows, methods, random)
    return replace(doc, scalars=values, diagnostic=hits, loo_skipped=loo_skipped)
