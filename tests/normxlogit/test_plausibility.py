"""Plausibility metrics (``normxlogit.plausibility``) against ferret's own values and its formulas."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from normxlogit.bootstrap import Resampling, document_keys
from normxlogit.errors import RecordError
from normxlogit.plausibility import (
    EMPTY,
    MISSING,
    PLAUSIBILITY_METRICS,
    SCORED,
    DocPlausibility,
    doc_plausibility,
    plausibility_row,
    pr_auc,
    rationale_words,
    top_k_words,
    word_scores,
)
from normxlogit.plausibility_intervals import PlausibilityReplicates

CASES = Path(__file__).with_name("data") / "ferret_plausibility_cases.json"


def test_equal_to_ferret_xai_on_its_own_evaluators():
    """40 cases scored by ferret-xai 0.4.2's AUPRC/Tokenf1/TokenIOU ``compute_evaluation`` (see
    data/make_ferret_cases.py): ours agree to rounding."""
    cases = json.loads(CASES.read_text())
    assert len(cases) == 40
    for case in cases:
        got = plausibility_row(np.array(case["scores"]), np.array(case["rationale"], dtype=bool), case["k"])
        want = [case["ferret"][m] for m in PLAUSIBILITY_METRICS]
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


# A reference written from ferret's published formulas (ferret-xai 0.4.2):
# - plausibility_measures.py l.21-23: auprc = sklearn.metrics.auc(recall, precision) of
#   precision_recall_curve(rationale, scores); l.56-59: only_pos sets scores <= 0 to 0 first.
#   sklearn's curve has one point per distinct score threshold t (precision and recall of "score >= t"),
#   in threshold order, and ends at (recall 0, precision 1); auc integrates with the trapezoidal rule
#   in that order (at equal recall, the order of the precisions matters).
# - utils_from_soft_to_discrete.py l.9-17: the top k are argsort()[-k:][::-1], kept if score > 0 (ferret's
#   argsort is numpy's default, unstable sort; ours is stable, so ties at the k-th place are broken the
#   same way on every machine: see normxlogit/plausibility.py, difference 3);
#   l.33-46: none kept -> the metric is 0.
# - plausibility_measures.py l.76-110: F1 = 2pr/(p+r), 0 if p or r is 0; l.287-305: IoU = |A&B|/|A|B|.
def _reference(scores: np.ndarray, truth: np.ndarray, k: int) -> list[float]:
    soft = np.where(scores > 0, scores, 0.0)
    points = [(0.0, 1.0)]  # then thresholds from the highest down, as the curve runs
    for t in np.unique(soft)[::-1]:
        chosen = soft >= t
        points.append((truth[chosen].sum() / truth.sum(), truth[chosen].mean()))
    auprc = sum((r1 - r0) * (p0 + p1) / 2 for (r0, p0), (r1, p1) in zip(points, points[1:]))
    top = [i for i in np.argsort(scores, kind="stable")[-k:][::-1] if scores[i] > 0]
    if not top:
        return [auprc, 0.0, 0.0]
    chosen = set(int(i) for i in top)
    gold = set(np.flatnonzero(truth).tolist())
    tp = len(chosen & gold)
    p, r = tp / len(chosen), tp / len(gold)
    f1 = 0.0 if p == 0 or r == 0 else 2 * p * r / (p + r)
    return [auprc, f1, tp / len(chosen | gold)]


def test_equal_to_a_reference_from_ferrets_formulas_with_ties():
    rng = np.random.default_rng(0)
    for _ in range(300):
        w = int(rng.integers(2, 30))
        scores = rng.integers(-3, 4, size=w).astype(float)  # many ties, zeros and negatives
        truth = rng.random(w) < 0.35
        truth[int(rng.integers(w))] = True
        k = int(rng.integers(1, w + 1))
        np.testing.assert_allclose(
            plausibility_row(scores, truth, k), _reference(scores, truth, k), atol=1e-12
        )


def test_a_perfect_explanation_scores_one_and_a_reversed_one_scores_low():
    truth = np.array([0, 1, 0, 0, 1, 0], dtype=bool)
    np.testing.assert_allclose(plausibility_row(truth * 2.0 + 0.1, truth), [1.0, 1.0, 1.0])
    low = plausibility_row(np.where(truth, 0.1, 2.0), truth)
    assert low[1] == low[2] == 0.0 and low[0] < 0.5


def test_auprc_is_trapezoidal_not_average_precision():
    # ranking: T F T  -> precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1
    scores, truth = np.array([3.0, 2.0, 1.0]), np.array([True, False, True])
    trapezoid = (0.5 * (1 + 1) / 2) + 0.5 * (0.5 + 2 / 3) / 2
    assert pr_auc(scores, truth) == pytest.approx(trapezoid)
    assert pr_auc(scores, truth) != pytest.approx(0.5 * 1 + 0.5 * 2 / 3)  # average precision


def test_top_k_keeps_only_positive_scores_and_breaks_ties_to_the_later_word():
    np.testing.assert_array_equal(top_k_words(np.array([1.0, -1.0, 0.0, 2.0]), 3), [True, False, False, True])
    np.testing.assert_array_equal(top_k_words(np.array([1.0, 1.0, 1.0]), 1), [False, False, True])


TEXT = "Not bad, really good!"  # words: Not bad , really good !


def test_rationale_as_flags_spans_or_json_string():
    flags = [0, 1, 0, 0, 1, 0]
    want = np.array(flags, dtype=bool)
    np.testing.assert_array_equal(rationale_words(flags, TEXT), want)
    np.testing.assert_array_equal(rationale_words([True, 1, 0, 0, 0, False], TEXT), [1, 1, 0, 0, 0, 0])
    np.testing.assert_array_equal(rationale_words([[4, 7], [16, 20]], TEXT), want)
    np.testing.assert_array_equal(rationale_words([[5, 6]], TEXT), [0, 1, 0, 0, 0, 0])  # overlap marks
    np.testing.assert_array_equal(rationale_words([[0, 7]], TEXT), [1, 1, 0, 0, 0, 0])
    np.testing.assert_array_equal(rationale_words(json.dumps(flags), TEXT), want)
    assert not rationale_words([], TEXT).any()


@pytest.mark.parametrize(
    ("value", "reason", "words"),
    [
        ([0, 1, 0], "rationale_length_mismatch", "3 flags but the text has 6 words"),
        ([[3, 3]], "malformed_rationale", "[3, 3] is empty or outside"),
        ([[-1, 2]], "malformed_rationale", "outside the text"),
        ([[0, 99]], "malformed_rationale", "21 characters"),
        ([1, [0, 2]], "malformed_rationale", "neither 0/1 flags nor"),
        ([0, 2, 0, 0, 0, 0], "malformed_rationale", "neither"),
        ([[0, 1.5]], "malformed_rationale", "neither"),
        ({"a": 1}, "malformed_rationale", "holds a dict"),
        ("good", "malformed_rationale", "not a JSON list"),
        (7, "malformed_rationale", "holds a int"),
    ],
)
def test_a_malformed_rationale_is_a_record_error(value, reason, words):
    with pytest.raises(RecordError) as err:
        rationale_words(value, TEXT)
    assert err.value.reason == reason and words in str(err.value)


def test_word_scores_sum_tokens_and_leave_out_specials():
    # [CLS] Not bad ##ly , [SEP]   -> words 0, 1 (two tokens), 2
    scores = np.array([[9.0, 1.0, 2.0, 3.0, 4.0, 9.0]])
    index = np.array([-1, 0, 1, 1, 2, -1])
    words, reached = word_scores(scores, index, 4)
    np.testing.assert_array_equal(words, [[1.0, 5.0, 4.0, 0.0]])
    np.testing.assert_array_equal(reached, [True, True, True, False])  # word 3: cut by truncation


def test_doc_plausibility_statuses_truncation_and_random_rows():
    index = np.array([-1, 0, 1, 2, -1])
    scores = np.array([[0.0, 1.0, 3.0, 2.0, 0.0], [0.0, 3.0, 2.0, 1.0, 0.0], [0.0, 1.0, 2.0, 3.0, 0.0]])
    rows = np.array([1, 2])  # method 0, then random over two seeds
    assert doc_plausibility(scores, index, None, rows) == DocPlausibility(MISSING)
    # the only rationale word is past the truncation: nothing left to compare
    assert doc_plausibility(scores, index, np.array([0, 0, 0, 1], dtype=bool), rows).status == EMPTY
    truth = np.array([0, 1, 0, 1], dtype=bool)  # word 3 is cut: the rationale is word 1
    doc = doc_plausibility(scores, index, truth, rows)
    assert doc.status == SCORED and doc.values.shape == (2, 3)
    np.testing.assert_allclose(doc.values[0], [1.0, 1.0, 1.0])
    seeds = [plausibility_row(scores[i, 1:4], truth[:3]) for i in (1, 2)]
    np.testing.assert_allclose(doc.values[1], np.mean(seeds, axis=0))
    fixed = doc_plausibility(scores, index, truth, rows, k=2)
    np.testing.assert_allclose(fixed.values[0], [1.0, 2 / 3, 0.5])


def _docs(n: int, seed: int) -> list[tuple[str, DocPlausibility]]:
    rng = np.random.default_rng(seed)
    docs = []
    for i in range(n):
        if i % 10 == 0:
            docs.append((f"d{i}", DocPlausibility(MISSING if i % 20 else EMPTY)))
        else:
            values = np.stack(
                [np.clip(rng.normal(0.7, 0.1, 3), 0, 1), np.clip(rng.normal(0.4, 0.1, 3), 0, 1)]
            )
            docs.append((f"d{i}", DocPlausibility(SCORED, values)))
    return docs


def _accumulate(docs, resampling) -> PlausibilityReplicates:
    acc = PlausibilityReplicates(2, resampling)
    for (_, doc), key in zip(docs, document_keys([d for d, _ in docs])):
        acc.add(doc, int(key))
    return acc


def test_intervals_are_deterministic_split_invariant_and_paired():
    docs, resampling = _docs(60, 1), Resampling(replicates=300, seed=4)
    methods, baselines = ("normxlogit", "random"), ("random",)
    whole = _accumulate(docs, resampling)
    merged = _accumulate(docs[:25], resampling).merge(_accumulate(docs[25:], resampling))
    summary = whole.method_summary(methods, baselines)
    again = merged.method_summary(methods, baselines)
    for metric in PLAUSIBILITY_METRICS:
        a, b = summary["normxlogit"][metric], again["normxlogit"][metric]
        assert a["mean"] == pytest.approx(b["mean"]) and a["ci"] == pytest.approx(b["ci"])
    assert whole.counts == {SCORED: 54, MISSING: 3, EMPTY: 3}
    scored = np.stack([d.values for _, d in docs if d.values is not None])
    for j, metric in enumerate(PLAUSIBILITY_METRICS):
        figure = summary["normxlogit"][metric]
        assert figure["mean"] == pytest.approx(scored[:, 0, j].mean())
        low, high = figure["ci"]
        assert low < figure["mean"] < high and high - low < 0.1
        diff = figure["differences"]["random"]
        assert diff["difference"] == pytest.approx(scored[:, 0, j].mean() - scored[:, 1, j].mean())
        assert diff["ci"][0] > 0 and diff["p"] < 0.01
        assert "random" not in summary["random"][metric]["differences"]
    section = whole.section("rationale", None)
    assert (section["documents"], section["missing_rationale"], section["empty_rationale"]) == (54, 3, 3)


def test_no_scored_document_gives_null_figures():
    acc = _accumulate([("a", DocPlausibility(MISSING))], Resampling(replicates=50))
    figure = acc.method_summary(("normxlogit", "random"), ("random",))["normxlogit"]["auprc_plau"]
    assert figure["mean"] is None and figure["ci"] == [None, None]
    assert figure["differences"]["random"]["difference"] is None
