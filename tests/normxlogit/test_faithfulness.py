"""The faithfulness metric arithmetic against values computed by hand on a toy model."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from normxlogit.faithfulness import (
    CurveSums,
    DocFaithfulness,
    average_rows,
    doc_faithfulness,
    perturb,
    random_scores,
    rank_tokens,
    removed_counts,
    replacement_token,
    rows_per_method,
    seeded_scores,
)

MASK = 103
CLS, SEP = 101, 102
KEY = 12  # the toy model's evidence token
IDS = np.array([CLS, 11, KEY, 13, SEP])  # n = 5


def toy_model(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """p(class 1) = 0.9 when the evidence token is present, else 0.2; returns (p(class 1), argmax)."""
    p1 = np.where((rows == KEY).any(-1), 0.9, 0.2)
    return p1, (p1 > 0.5).astype(np.int64)


def test_ranking_is_largest_first_and_skips_only_a_special_first_token():
    scores = np.array([9.0, 1.0, 4.0, 3.0, 2.0])
    np.testing.assert_array_equal(rank_tokens(scores, skip_first=True), [2, 3, 4, 1])
    np.testing.assert_array_equal(rank_tokens(scores, skip_first=False), [0, 2, 3, 4, 1])
    # ties keep position order, so rankings are deterministic
    np.testing.assert_array_equal(rank_tokens(np.array([0.0, 1.0, 1.0, 1.0]), skip_first=True), [1, 2, 3])


def test_removed_counts_are_floor_of_k_times_n():
    np.testing.assert_array_equal(removed_counts(10), [1, 2, 3, 4, 5, 6, 7, 8, 9])
    np.testing.assert_array_equal(removed_counts(7), [0, 1, 2, 2, 3, 4, 4, 5, 6])
    np.testing.assert_array_equal(removed_counts(5), [0, 1, 1, 2, 2, 3, 3, 4, 4])


def test_perturb_masks_the_hand_computed_positions():
    ranking = np.array([2, 3, 4, 1])  # [SEP] (position 4) is ranked and can be masked
    comp, suff = perturb(IDS, ranking, MASK)
    assert comp.shape == suff.shape == (9, 5)
    # k = 10%: m = 0
    np.testing.assert_array_equal(comp[0], IDS)
    np.testing.assert_array_equal(suff[0], [CLS, MASK, MASK, MASK, MASK])
    # k = 30%: m = 1
    np.testing.assert_array_equal(comp[2], [CLS, 11, MASK, 13, SEP])
    np.testing.assert_array_equal(suff[2], [CLS, MASK, KEY, MASK, MASK])
    # k = 50%: m = 2
    np.testing.assert_array_equal(comp[4], [CLS, 11, MASK, MASK, SEP])
    np.testing.assert_array_equal(suff[4], [CLS, MASK, KEY, 13, MASK])
    # k = 90%: m = 4, every ranked token; [CLS] is never touched
    np.testing.assert_array_equal(comp[8], [CLS, MASK, MASK, MASK, MASK])
    np.testing.assert_array_equal(suff[8], IDS)


def _toy_doc(gold: int):
    """One text, two methods: "good" ranks the evidence first, "bad" ranks it last."""
    good, bad = rank_tokens(np.array([0, 1, 4, 3, 2]), True), rank_tokens(np.array([0, 4, 1, 2, 3]), True)
    rows = np.stack([perturb(IDS, good, MASK), perturb(IDS, bad, MASK)])  # (2, 2, 9, 5)
    p1, pred = toy_model(rows)
    original_p1, original_pred = toy_model(IDS[None])
    assert original_pred[0] == 1  # y_hat = 1 with p = 0.9
    return doc_faithfulness(original_p1[0], p1, pred, gold)


def test_drops_and_accuracy_match_hand_computation():
    doc = _toy_doc(gold=1)
    # good ranking, comprehensiveness: the evidence goes at m >= 1, i.e. k >= 20%
    np.testing.assert_allclose(doc.drop[0, 0], [0.0] + [0.7] * 8)
    np.testing.assert_array_equal(doc.correct[0, 0], [True] + [False] * 8)
    # good ranking, sufficiency: the evidence is kept from m >= 1 on
    np.testing.assert_allclose(doc.drop[0, 1], [0.7] + [0.0] * 8)
    # bad ranking: the evidence is ranked 4th, masked (comprehensiveness) only at m = 4 (k = 80%, 90%)
    np.testing.assert_allclose(doc.drop[1, 0], [0.0] * 7 + [0.7] * 2)
    np.testing.assert_array_equal(doc.correct[1, 1], [False] * 7 + [True] * 2)


def test_drop_is_not_clipped():
    doc = doc_faithfulness(0.6, np.full((1, 2, 9), 0.8), np.zeros((1, 2, 9)), 0)
    np.testing.assert_allclose(doc.drop, -0.2)


def test_summary_is_the_mean_over_k_and_samples():
    sums = CurveSums.empty(2).add(_toy_doc(gold=1)).add(_toy_doc(gold=0))
    summary = sums.summary(("good", "bad"))
    assert summary["samples"] == 2
    good, bad = summary["methods"]["good"], summary["methods"]["bad"]
    assert good["comprehensiveness"]["drop"] == pytest.approx(0.7 * 8 / 9)
    assert good["sufficiency"]["drop"] == pytest.approx(0.7 / 9)
    assert bad["comprehensiveness"]["drop"] == pytest.approx(0.7 * 2 / 9)
    assert bad["sufficiency"]["drop"] == pytest.approx(0.7 * 7 / 9)
    # gold 1 then gold 0: accuracy hits flip, so every accuracy averages to (h + (9 - h)) / 18 = 0.5
    assert good["comprehensiveness"]["accuracy"] == pytest.approx(0.5)
    assert bad["sufficiency"]["accuracy"] == pytest.approx(0.5)
    single = CurveSums.empty(2).add(_toy_doc(gold=1)).summary(("good", "bad"))
    assert single["methods"]["good"]["comprehensiveness"]["accuracy"] == pytest.approx(1 / 9)
    assert single["methods"]["bad"]["sufficiency"]["accuracy"] == pytest.approx(2 / 9)


def test_curve_rows_and_merge_agree_with_adding():
    a = CurveSums.empty(2).add(_toy_doc(gold=1))
    b = CurveSums.empty(2).add(_toy_doc(gold=0))
    merged = a.merge(b)
    direct = CurveSums.empty(2).add(_toy_doc(gold=1)).add(_toy_doc(gold=0))
    assert merged.summary(("good", "bad")) == direct.summary(("good", "bad"))
    rows = merged.curve_rows(("good", "bad"))
    assert len(rows) == 2 * 2 * 9
    first = rows[1]  # good, comprehensiveness, k = 20%
    assert (first["method"], first["metric"], first["k"], first["samples"]) == (
        "good",
        "comprehensiveness",
        0.2,
        2,
    )
    assert first["drop"] == pytest.approx(0.7)


def test_empty_sums_give_null_figures():
    summary = CurveSums.empty(1).summary(("normxlogit",))
    assert summary == {
        "samples": 0,
        "methods": {
            "normxlogit": {
                "comprehensiveness": {"drop": None, "accuracy": None},
                "sufficiency": {"drop": None, "accuracy": None},
            }
        },
    }


def test_random_scores_are_reproducible_by_seed_and_document():
    a = seeded_scores(20, 0, "doc-1")
    np.testing.assert_array_equal(a, seeded_scores(20, 0, "doc-1"))
    assert not np.array_equal(a, seeded_scores(20, 1, "doc-1"))
    assert not np.array_equal(a, seeded_scores(20, 0, "doc-2"))


def test_replacement_falls_back_from_mask_to_unk_to_pad():
    assert replacement_token(SimpleNamespace(mask_token_id=103, unk_token_id=100, pad_token_id=0)) == (
        103,
        "mask",
    )
    assert replacement_token(SimpleNamespace(mask_token_id=None, unk_token_id=100, pad_token_id=0)) == (
        100,
        "unk",
    )
    assert replacement_token(SimpleNamespace(mask_token_id=None, unk_token_id=None, pad_token_id=2)) == (
        2,
        "pad",
    )
    with pytest.raises(ValueError, match="no mask, unk or pad"):
        replacement_token(SimpleNamespace(mask_token_id=None, unk_token_id=None, pad_token_id=None))


def test_random_rankings_start_at_the_seed_and_average_per_method():
    scores = random_scores(7, 4, 3, "doc")
    assert scores.shape == (3, 7)
    for r in range(3):
        np.testing.assert_array_equal(scores[r], seeded_scores(7, 4 + r, "doc"))
    rows = rows_per_method(("normxlogit", "random", "norm"), 3)
    np.testing.assert_array_equal(rows, [1, 3, 1])
    drop = np.arange(5 * 2 * 9, dtype=np.float64).reshape(5, 2, 9)
    correct = np.zeros((5, 2, 9), dtype=bool)
    correct[1] = correct[2] = True
    doc = average_rows(DocFaithfulness(drop, correct), rows)
    np.testing.assert_array_equal(doc.drop[0], drop[0])
    np.testing.assert_allclose(doc.drop[1], drop[1:4].mean(axis=0))
    np.testing.assert_array_equal(doc.drop[2], drop[4])
    np.testing.assert_allclose(doc.correct[1], 2 / 3)
    np.testing.assert_array_equal(doc.correct[[0, 2]], 0.0)
    one = DocFaithfulness(drop[:3], correct[:3])
    assert average_rows(one, rows_per_method(("a", "random", "b"), 1)) is one  # one seed: unchanged
