"""``score_batch``: layer-0 capture, batch and padding invariance, layer-wise LogAt, batching helpers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from normxlogit.encoding import EncodedText
from normxlogit.scoring import pad_batch, plan_batches, score_batch

TOL = dict(atol=1e-5, rtol=1e-5)
SIDES = ("left", "right")


def _texts(make_ids, task: str, lengths=(9, 13, 4, 20)):
    """The text under test first, then longer and shorter ones."""
    return [make_ids(n, seed=100 + n, mask_at=1 if task == "masked_lm" else None) for n in lengths]


def _assert_same(a, b):
    np.testing.assert_allclose(a.norm, b.norm, **TOL)
    np.testing.assert_allclose(a.logat, b.logat, **TOL)
    np.testing.assert_allclose(a.score, b.score, **TOL)
    if a.layer_logat is not None or b.layer_logat is not None:
        np.testing.assert_allclose(a.layer_logat, b.layer_logat, **TOL)
    assert (a.target_id, a.foil_id, a.prediction_id) == (b.target_id, b.foil_id, b.prediction_id)
    if a.prediction_prob is not None:
        assert a.prediction_prob == pytest.approx(b.prediction_prob, abs=1e-5)
    assert a.prediction_value == pytest.approx(b.prediction_value, abs=1e-5)


@pytest.mark.parametrize("side", SIDES)
def test_layer0_norm_is_hidden_states_0(registered, side, make_sm, make_ids, make_encoded, reference):
    """The hook on the first layer keeps exactly ``output_hidden_states[0]``, even in a padded batch."""
    sm = make_sm(registered.model_type, registered.task, padding_side=side)
    texts = _texts(make_ids, registered.task)
    atts = score_batch(sm, [make_encoded(sm, t) for t in texts])
    for ids, att in zip(texts, atts):
        hs0 = reference.outputs(sm.model, ids).hidden_states[0][0]
        assert att.norm.shape == (len(ids),)
        np.testing.assert_allclose(att.norm, hs0.norm(dim=-1).numpy(), **TOL)


@pytest.mark.parametrize("side", SIDES)
def test_scores_do_not_depend_on_the_batch(registered, side, make_sm, make_ids, make_encoded):
    sm = make_sm(registered.model_type, registered.task, padding_side=side)
    if sm.adapter.pooling != "last":
        assert sm.padding_side == "right"  # encoders always pad as they were trained
    else:
        assert sm.padding_side == side
    enc = [make_encoded(sm, t) for t in _texts(make_ids, registered.task)]
    layers = (1, sm.info.num_layers)
    alone = score_batch(sm, [enc[0]], layers=layers)[0]
    in_batch = score_batch(sm, enc, layers=layers)
    reordered = score_batch(sm, [enc[3], enc[2], enc[0]], layers=layers)
    _assert_same(alone, in_batch[0])
    _assert_same(alone, reordered[2])
    for e, att in zip(enc, in_batch):
        assert len(att.score) == len(e)
        assert np.isfinite(att.score).all()
    _assert_same(score_batch(sm, [enc[3]], layers=layers)[0], in_batch[3])


@pytest.mark.parametrize("model_type", ["llama", "gemma", "gpt2", "phi", "gpt_neox", "qwen3"])
@pytest.mark.parametrize("task", ["classification", "causal_lm"])
def test_decoder_left_and_right_padding_agree(model_type, task, make_sm, make_ids, make_encoded):
    left = make_sm(model_type, task, padding_side="left")
    right = make_sm(model_type, task, padding_side="right")
    texts = _texts(make_ids, task)
    a = score_batch(left, [make_encoded(left, t) for t in texts], layers=(1,))
    b = score_batch(right, [make_encoded(right, t) for t in texts], layers=(1,))
    for x, y in zip(a, b):
        _assert_same(x, y)


def test_mixed_targets_and_foils_in_one_batch(make_sm, make_ids, make_encoded):
    """Each text keeps its own target and foil; a text without a foil is not contrasted."""
    sm = make_sm("bert", "classification")
    texts = _texts(make_ids, "classification")
    spec = [(2, 0), (None, None), (1, None), (0, 2)]
    batch = [make_encoded(sm, t, target_id=y, foil_id=f) for t, (y, f) in zip(texts, spec)]
    mixed = score_batch(sm, batch)
    for e, att in zip(batch, mixed):
        _assert_same(att, score_batch(sm, [e])[0])
    assert mixed[1].target_id == mixed[1].prediction_id and mixed[1].foil_id is None
    assert (mixed[0].target_id, mixed[0].foil_id) == (2, 0)
    # target - foil, from two single-target runs
    t2 = score_batch(sm, [make_encoded(sm, texts[0], target_id=2)])[0]
    t0 = score_batch(sm, [make_encoded(sm, texts[0], target_id=0)])[0]
    np.testing.assert_allclose(mixed[0].logat, t2.logat - t0.logat, **TOL)
    np.testing.assert_allclose(mixed[0].score, mixed[0].norm * mixed[0].logat, rtol=1e-6)


def test_default_target_is_the_prediction_at_the_pooled_position(make_sm, make_ids, make_encoded):
    sm = make_sm("llama", "causal_lm", padding_side="left")
    texts = _texts(make_ids, "causal_lm")
    atts = score_batch(sm, [make_encoded(sm, t) for t in texts])
    for ids, att in zip(texts, atts):
        with torch.no_grad():
            logits = sm.model(torch.as_tensor(ids)[None]).logits[0, -1]
        assert att.target_id == att.prediction_id == int(logits.argmax())
        # At the pooled token, LogAt is the model's own logit of the target.
        assert att.logat[-1] == pytest.approx(float(logits.max()), abs=1e-5)


def test_layerwise_last_layer_is_final_and_first_layer_matches_reference(
    registered, make_sm, make_ids, make_encoded, reference
):
    """layers=(1, L): layer L == the final LogAt; layer 1 == the head on hidden_states[1]
    (through the final norm for pre-norm decoders)."""
    sm = make_sm(registered.model_type, registered.task, padding_side="left")
    top = sm.info.num_layers
    texts = _texts(make_ids, registered.task)
    atts = score_batch(sm, [make_encoded(sm, t) for t in texts], layers=(1, top))
    att, ids = atts[0], texts[0]
    assert att.layer_logat.shape == (len(ids), 2)
    np.testing.assert_allclose(att.layer_logat[:, 1], att.logat, atol=1e-6, rtol=0)
    ref = reference.scores(sm.model, registered.task, ids, target=att.target_id, layer=1)
    np.testing.assert_allclose(att.layer_logat[:, 0], ref.logat, **TOL)
    assert not np.allclose(att.layer_logat[:, 0], att.logat, atol=1e-3)  # the layers really differ


@pytest.mark.parametrize("model_type", ["bert", "llama"])
def test_layerwise_regression_and_foil(model_type, make_sm, make_ids, make_encoded, reference):
    reg = make_sm(model_type, "classification", num_labels=1, padding_side="left")
    ids = _texts(make_ids, "classification")[0]
    att = score_batch(reg, [make_encoded(reg, ids)], layers=(1, 2))[0]
    ref = reference.scores(reg.model, "classification", ids, target=0, layer=1)
    np.testing.assert_allclose(att.layer_logat[:, 0], ref.logat, **TOL)
    np.testing.assert_allclose(att.layer_logat[:, 1], att.logat, atol=1e-6, rtol=0)

    cls = make_sm(model_type, "classification", padding_side="left")
    att = score_batch(cls, [make_encoded(cls, ids, target_id=1, foil_id=2)], layers=(1,))[0]
    ref = reference.scores(cls.model, "classification", ids, target=1, foil=2, layer=1)
    np.testing.assert_allclose(att.layer_logat[:, 0], ref.logat, **TOL)


def test_no_layers_means_no_layer_logat(make_sm, make_ids, make_encoded):
    sm = make_sm("bert", "classification")
    assert score_batch(sm, [make_encoded(sm, make_ids(6, 0))])[0].layer_logat is None


@pytest.mark.parametrize("side", SIDES)
def test_pad_batch_places_each_text_on_its_side(side):
    def enc(ids):
        n = len(ids)
        return EncodedText(
            np.array(ids), np.zeros((n, 2)), np.zeros(n, bool), np.zeros(n, np.int32), [""] * n, False, 0
        )

    padded = pad_batch([enc([5, 6, 7]), enc([8]), enc([9, 10])], pad_id=1, side=side)
    if side == "left":
        want = [[5, 6, 7], [1, 1, 8], [1, 9, 10]]
        assert padded.shift.tolist() == [0, 2, 1]
    else:
        want = [[5, 6, 7], [8, 1, 1], [9, 10, 1]]
        assert padded.shift.tolist() == [0, 0, 0]
    assert padded.input_ids.tolist() == want
    assert padded.attention_mask.tolist() == (np.array(want) != 1).astype(int).tolist()


def test_plan_batches_respects_the_budget_and_covers_every_text():
    lengths = [5, 40, 3, 12, 12, 7, 100, 1, 9, 9, 9]
    plan = plan_batches(lengths, batch_tokens=30)
    flat = [i for batch in plan for i in batch]
    assert sorted(flat) == list(range(len(lengths)))
    for batch in plan:
        width = max(lengths[i] for i in batch)
        assert len(batch) * width <= 30 or len(batch) == 1  # a text over the budget goes alone
    assert [100] in [[lengths[i] for i in b] for b in plan]
    assert [lengths[i] for i in flat] == sorted(lengths)  # shortest first
    assert plan == plan_batches(lengths, batch_tokens=30)  # deterministic
    assert plan_batches(lengths, batch_tokens=10**6, max_padding=float("inf")) == [flat]
    # The budget is inclusive and never exceeded: 3 x 10 fits 30, a fourth text does not.
    assert plan_batches([10, 10, 10, 10], batch_tokens=30) == [[0, 1, 2], [3]]
    assert plan_batches([10, 10, 10, 10], batch_tokens=29) == [[0, 1], [2, 3]]


def test_plan_batches_bounds_padding():
    rng = np.random.default_rng(0)
    lengths = rng.integers(5, 512, size=500).tolist()
    plan = plan_batches(lengths, batch_tokens=8192)
    assert sorted(i for b in plan for i in b) == list(range(500))
    for batch in plan:
        padded = len(batch) * max(lengths[i] for i in batch)
        assert padded <= 8192 or len(batch) == 1
        assert padded <= 1.15 * sum(lengths[i] for i in batch)
    total_padded = sum(len(b) * max(lengths[i] for i in b) for b in plan)
    assert total_padded <= 1.15 * sum(lengths)
    unbounded = plan_batches(lengths, batch_tokens=8192, max_padding=float("inf"))
    assert len(plan) > len(unbounded)  # the bound is what cuts the extra batches
