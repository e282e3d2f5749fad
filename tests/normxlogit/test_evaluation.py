"""evaluate_batch on a tiny model: consistent with the scorer, independent of batching, reproducible."""

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
