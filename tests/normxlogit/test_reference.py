"""Batched scores equal the authors' literal per-token computation (conftest ``AuthorsReference``).

The reference runs the model's own forward on the text alone, slices the final hidden states so
token i stands in the first slot (first-token heads) or takes token i's vector (token-wise heads),
calls the model's own head modules one token at a time over the full class set or vocabulary, and
multiplies by ||hidden_states[0][i]||. ``score_batch`` scores the same text inside a padded batch
(decoders padded on the left, where positions are most easily got wrong).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from normxlogit.scoring import score_batch

TOL = dict(atol=1e-5, rtol=1e-5)
LENGTHS = (5, 9, 14)  # the scored text (9 tokens) sits between a shorter and a longer one


def _side(sm) -> str:
    return "left" if sm.adapter.pooling == "last" else "right"


def _texts(make_ids, task: str):
    return [make_ids(n, seed=10 + n, mask_at=2 if task == "masked_lm" else None) for n in LENGTHS]


def _predicted(out, task: str, ids: np.ndarray) -> int:
    logits = out.logits[0]
    if task == "causal_lm":
        return int(logits[-1].argmax())
    if task == "masked_lm":
        return int(logits[int(np.flatnonzero(ids == 4)[0])].argmax())
    return int(logits.argmax())


def _assert_matches(att, ref):
    np.testing.assert_allclose(att.norm, ref.norm, **TOL)
    np.testing.assert_allclose(att.logat, ref.logat, **TOL)
    np.testing.assert_allclose(att.score, ref.score, **TOL)


def test_every_registered_pair_matches_the_reference(registered, make_sm, make_ids, make_encoded, reference):
    sm = make_sm(registered.model_type, registered.task, padding_side="left")
    assert sm.padding_side == _side(sm)
    texts = _texts(make_ids, registered.task)
    atts = score_batch(sm, [make_encoded(sm, t) for t in texts])
    ids = texts[1]
    out = reference.outputs(sm.model, ids)
    y = _predicted(out, registered.task, ids)
    ref = reference.scores(sm.model, registered.task, ids, target=y)
    att = atts[1]
    assert att.target_id == y == att.prediction_id
    _assert_matches(att, ref)
    pooled = {"causal_lm": out.logits[0, -1], "masked_lm": out.logits[0, 2]}.get(
        registered.task, out.logits[0]
    )
    assert att.prediction_prob == pytest.approx(float(torch.softmax(pooled, dim=-1)[y]), abs=1e-5)
    assert att.prediction_value == pytest.approx(float(pooled[y]), abs=1e-5)


@pytest.mark.parametrize(
    ("model_type", "task"),
    [
        ("bert", "classification"),
        ("roberta", "classification"),
        ("deberta-v2", "classification"),
        ("distilbert", "classification"),
        ("electra", "classification"),
        ("llama", "classification"),
        ("gpt2", "causal_lm"),
        ("llama", "causal_lm"),
        ("roberta", "masked_lm"),
    ],
)
def test_explicit_target_and_foil_match_the_reference(
    model_type, task, make_sm, make_ids, make_encoded, reference
):
    """Issue #2's named models, with a non-predicted target and a contrastive foil."""
    sm = make_sm(model_type, task, padding_side="left")
    texts = _texts(make_ids, task)
    ids = texts[1]
    y = _predicted(reference.outputs(sm.model, ids), task, ids)
    target, foil = ((y + 1) % 3, y) if task == "classification" else ((y + 7) % 100, y)
    batch = [make_encoded(sm, t) for t in texts]
    batch[1] = make_encoded(sm, ids, target_id=target)
    alone_target = score_batch(sm, batch)[1]
    batch[1] = make_encoded(sm, ids, target_id=target, foil_id=foil)
    contrast = score_batch(sm, batch)[1]
    assert alone_target.target_id == target and alone_target.foil_id is None
    assert contrast.target_id == target and contrast.foil_id == foil
    assert contrast.prediction_id == y  # the prediction does not follow the requested target
    _assert_matches(alone_target, reference.scores(sm.model, task, ids, target=target))
    _assert_matches(contrast, reference.scores(sm.model, task, ids, target=target, foil=foil))


@pytest.mark.parametrize("model_type", ["bert", "llama", "deberta-v2", "distilbert", "gpt2"])
def test_regression_scores_distance_to_the_pooled_output(
    model_type, make_sm, make_ids, make_encoded, reference
):
    """num_labels=1: LogAt is |H(x_i) - H(x_p)|, exactly 0 at the pooled token, unsigned."""
    sm = make_sm(model_type, "classification", padding_side="left", num_labels=1)
    texts = _texts(make_ids, "classification")
    atts = score_batch(sm, [make_encoded(sm, t) for t in texts], layers=(2,))
    ids = texts[1]
    att = atts[1]
    pooled = 0 if sm.adapter.pooling == "first" else len(ids) - 1
    assert att.logat[pooled] == 0.0
    assert att.score[pooled] == 0.0
    assert (att.logat >= 0).all()
    assert np.count_nonzero(att.logat) == len(ids) - 1  # random vectors: only x_p scores 0
    _assert_matches(att, reference.scores(sm.model, "classification", ids, target=0))
    out = reference.outputs(sm.model, ids)
    assert att.prediction_id is None and att.prediction_prob is None
    assert att.prediction_value == pytest.approx(float(out.logits[0, 0]), abs=1e-5)
    # The last layer of the layer-wise variant is the final LogAt.
    np.testing.assert_allclose(att.layer_logat[:, 0], att.logat, atol=1e-6, rtol=0)
