"""evaluate_batch on a tiny model: consistent with the scorer, independent of batching, reproducible;
the random baseline over several seeds is the mean of its single-seed runs."""

from __future__ import annotations

import numpy as np
import pytest

import normxlogit
from normxlogit.evaluation import (
    METHODS,
    EvaluationError,
    EvaluationOptions,
    check_evaluable,
    check_methods,
    evaluate_batch,
    predict_rows,
)
from normxlogit.faithfulness import doc_faithfulness, perturb, rank_tokens, replacement_token, seeded_scores

TEXTS = [
    "A wonderful, heartfelt film with great acting.",
    "Dull plot and wooden dialogue; I left early.",
    "Fine.",
]


@pytest.fixture(scope="module")
def classifier(tiny_classifier):
    sm = normxlogit.load_model(tiny_classifier)
    enc = [normxlogit.encode_text(t, sm.tokenizer, sm.model, sm.adapter, max_length=64) for t in TEXTS]
    return sm, enc


def test_unmasked_rows_reproduce_the_scorers_prediction(classifier):
    sm, enc = classifier
    atts = normxlogit.score_batch(sm, enc)
    targets = np.array([a.prediction_id for a in atts])
    prob, pred = predict_rows(sm, [e.input_ids for e in enc], targets, batch_tokens=20)
    np.testing.assert_allclose(prob, [a.prediction_prob for a in atts], rtol=1e-5)
    np.testing.assert_array_equal(pred, targets)


def test_results_do_not_depend_on_the_batch(classifier):
    sm, enc = classifier
    opts = EvaluationOptions(methods=METHODS, seed=3, ig_steps=4, batch_tokens=64)
    together = evaluate_batch(sm, enc, [1, 0, 1], ["a", "b", "c"], opts)
    alone = evaluate_batch(sm, enc[1:2], [0], ["b"], opts)[0]
    assert together[1].drop.shape == (len(METHODS), 2, 9)
    np.testing.assert_allclose(alone.drop, together[1].drop, atol=1e-5)
    np.testing.assert_array_equal(alone.correct, together[1].correct)


def test_random_baseline_is_reproducible_by_seed(classifier):
    sm, enc = classifier

    def run(seed: int):
        opts = EvaluationOptions(methods=("random",), seed=seed, batch_tokens=256)
        return np.stack([d.drop for d in evaluate_batch(sm, enc, [1, 0, 1], ["a", "b", "c"], opts)])

    np.testing.assert_array_equal(run(0), run(0))
    assert not np.array_equal(run(0), run(1))


def test_method_names_and_models_are_checked(tiny_causal_lm):
    with pytest.raises(EvaluationError, match="distinct names from normxlogit"):
        check_methods(("normxlogit", "lime"))
    check_evaluable(normxlogit.load_model(tiny_causal_lm))  # causal LMs are supported


def _single_ranking_baseline(sm, enc, golds, doc_ids, seed: int) -> np.ndarray:
    """The random baseline as it was before ``random_seeds``: one ranking per text from
    ``seeded_scores(n, seed, doc_id)``, its variants scored in one ``predict_rows`` call."""
    replacement, _ = replacement_token(sm.tokenizer)
    atts = normxlogit.score_batch(sm, enc)
    variants = [
        perturb(e.input_ids, rank_tokens(seeded_scores(len(e), seed, d), bool(e.special[0])), replacement)[
            None
        ]
        for e, d in zip(enc, doc_ids)
    ]
    rows = [row for v in variants for row in v.reshape(-1, v.shape[-1])]
    targets = np.repeat([a.prediction_id for a in atts], 18)
    prob, pred = predict_rows(sm, rows, targets, 256)
    return np.stack(
        [
            doc_faithfulness(
                a.prediction_prob,
                prob[b * 18 : (b + 1) * 18].reshape(1, 2, 9),
                pred[b * 18 : (b + 1) * 18].reshape(1, 2, 9),
                g,
            ).drop
            for b, (a, g) in enumerate(zip(atts, golds))
        ]
    )


def test_one_random_seed_reproduces_the_single_ranking_baseline_exactly(classifier):
    sm, enc = classifier
    opts = EvaluationOptions(methods=("random",), seed=5, batch_tokens=256, random_seeds=1)
    docs = evaluate_batch(sm, enc, [1, 0, 1], ["a", "b", "c"], opts)
    np.testing.assert_array_equal(
        np.stack([d.drop for d in docs]), _single_ranking_baseline(sm, enc, [1, 0, 1], ["a", "b", "c"], 5)
    )
    assert all(d.correct.dtype == bool for d in docs)  # one seed: hits, not shares


def test_random_over_seeds_is_the_mean_of_its_single_seed_runs(classifier):
    sm, enc = classifier
    ids, golds = ["a", "b", "c"], [1, 0, 1]

    def run(seed: int, random_seeds: int) -> list:
        opts = EvaluationOptions(
            methods=("normxlogit", "random"), seed=seed, batch_tokens=256, random_seeds=random_seeds
        )
        return evaluate_batch(sm, enc, golds, ids, opts)

    three = run(2, 3)
    singles = [run(s, 1) for s in (2, 3, 4)]
    for b, doc in enumerate(three):
        assert doc.drop.shape == (2, 2, 9)
        np.testing.assert_allclose(doc.drop[1], np.mean([s[b].drop[1] for s in singles], axis=0), atol=1e-6)
        np.testing.assert_allclose(doc.correct[1], np.mean([s[b].correct[1] for s in singles], axis=0))
        np.testing.assert_allclose(
            doc.drop[0], singles[0][b].drop[0], atol=1e-6
        )  # other methods as they were
    # three different rankings: the mean differs from the first seed's curve
    assert not np.allclose(three[0].drop[1], singles[0][0].drop[1])


def test_random_seeds_and_seed_are_checked():
    with pytest.raises(EvaluationError, match="random_seeds >= 1"):
        EvaluationOptions(random_seeds=0)
    with pytest.raises(EvaluationError, match="seed >= 0"):
        EvaluationOptions(seed=-1)
