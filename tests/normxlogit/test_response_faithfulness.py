"""Response-level faithfulness: which tokens are ranked and replaced, the mean log-probability drop,
the gradient baselines and the variants, against values computed by hand from the model's own
logits (normxlogit/response_faithfulness.py, response_baselines.py, response_evaluation.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from normxlogit.engine import BatchEngine, BucketDone
from normxlogit.errors import RecordError
from normxlogit.faithfulness import PERCENTS
from normxlogit.response_baselines import (
    gradient_x_input_l2_steps,
    gradient_x_input_signed,
    integrated_gradients_response,
)
from normxlogit.response_evaluation import (
    DEFAULT_RESPONSE_METHODS,
    NO_CONTEXT,
    RESPONSE_BASELINES,
    RESPONSE_METHODS,
    Evidence,
    ResponseEvaluationOptions,
    evaluate_response_batch,
    evaluate_response_items,
)
from normxlogit.response_faithfulness import perturb_context, rankable_context, response_logprobs
from normxlogit.response_scoring import score_responses
from normxlogit.responses import SEGMENT_CODE

from .conftest import MASK_ID, encoded_response

T, U, R = SEGMENT_CODE["template"], SEGMENT_CODE["user"], SEGMENT_CODE["response"]


@pytest.fixture(scope="module")
def lm(make_sm):
    return make_sm("llama", "causal_lm", padding_side="left")


def model_logprobs(sm, ids: np.ndarray) -> torch.Tensor:
    """(n, V) float64 log-softmax of the model's own logits on one unpadded row."""
    with torch.no_grad():
        return torch.log_softmax(sm.model(torch.as_tensor(ids)[None]).logits[0].double(), -1)


def mean_logprob_by_hand(sm, ids: np.ndarray, start: int) -> tuple[float, float]:
    lp = model_logprobs(sm, ids)
    steps = range(start, len(ids))
    mean = np.mean([float(lp[t - 1, ids[t]]) for t in steps])
    agree = np.mean([int(lp[t - 1].argmax()) == int(ids[t]) for t in steps])
    return mean, agree


def test_rankable_context_leaves_out_specials_template_and_the_response(make_ids):
    ids = make_ids(10, seed=1)
    segment = [T, T, U, U, U, T, T, R, R, R]
    special = [True, False, False, False, False, True, False, False, False, True]
    enc = encoded_response(ids, segment, special, start=7)
    np.testing.assert_array_equal(np.flatnonzero(rankable_context(enc)), [2, 3, 4])


def test_k_percent_of_the_rankable_tokens_are_replaced(make_ids):
    ids = make_ids(16, seed=2)
    # 12 rankable context tokens at 2..13, a special BOS and a template token before, 2 response tokens.
    segment = [T, T] + [U] * 12 + [R, R]
    special = [True] + [False] * 15
    enc = encoded_response(ids, segment, special, start=14)
    scores = np.arange(16, dtype=float)[::-1].copy()  # earlier positions rank higher
    scores[1] = 1e9  # a template token with the top score is still never ranked
    variants = perturb_context(enc, scores, MASK_ID)
    assert variants.shape == (2, len(PERCENTS), 16)
    for j, k in enumerate(PERCENTS):
        m = k * 12 // 100
        comp, suff = variants[0, j], variants[1, j]
        replaced = np.flatnonzero(comp != ids)
        np.testing.assert_array_equal(replaced, np.arange(2, 2 + m))
        np.testing.assert_array_equal(np.flatnonzero(suff != ids), np.arange(2 + m, 14))
        assert (comp[replaced] == MASK_ID).all()
        np.testing.assert_array_equal(comp[[0, 1, 14, 15]], ids[[0, 1, 14, 15]])
        np.testing.assert_array_equal(suff[[0, 1, 14, 15]], ids[[0, 1, 14, 15]])


def test_response_logprobs_are_the_models_own_teacher_forced_means(lm, make_ids):
    rows = [np.r_[make_ids(6, seed=3), make_ids(3, seed=4)], make_ids(5, seed=5), make_ids(11, seed=6)]
    starts = [6, 2, 9]
    mean, agree = response_logprobs(lm, rows, starts, batch_tokens=24)  # several forward passes
    for r, s, m, a in zip(rows, starts, mean, agree):
        want_m, want_a = mean_logprob_by_hand(lm, r, s)
        assert m == pytest.approx(want_m, rel=1e-5, abs=1e-6)
        assert a == want_a


def test_drops_equal_the_hand_computed_mean_logprob_drop(make_pair, lm, make_ids):
    """Every method's drops by hand; random's are the mean over its two seeds' rankings."""
    batch = [
        make_pair(make_ids(9, seed=7), make_ids(4, seed=8)),
        make_pair(make_ids(5, seed=9), make_ids(3, seed=10)),
    ]
    opts = ResponseEvaluationOptions(
        methods=("random", "normxlogit"), seed=3, batch_tokens=64, random_seeds=2
    )
    docs = evaluate_response_batch(lm, batch, ["a", "b"], opts)
    ev = Evidence(lm, batch, ["a", "b"], 3, random_seeds=2)
    for d, (enc, doc) in enumerate(zip(batch, docs)):
        assert doc.drop.shape == doc.correct.shape == (2, 2, len(PERCENTS))
        base, base_agree = mean_logprob_by_hand(lm, enc.input_ids, enc.response_start)
        for mi, name in enumerate(opts.methods):
            rankings = np.atleast_2d(RESPONSE_METHODS[name].scores(ev)[d])
            assert len(rankings) == (2 if name == "random" else 1)
            n_c = enc.response_start
            for j, k in enumerate(PERCENTS):
                m = k * n_c // 100
                for metric in (0, 1):
                    drops, agrees = [], []
                    for scores in rankings:
                        order = np.argsort(-scores[: enc.response_start], kind="stable")
                        ids = enc.input_ids.copy()
                        ids[(order[:m], order[m:])[metric]] = MASK_ID
                        pert, pert_agree = mean_logprob_by_hand(lm, ids, enc.response_start)
                        drops.append(base - pert)
                        agrees.append(pert_agree)
                    assert doc.drop[mi, metric, j] == pytest.approx(np.mean(drops), abs=1e-5)
                    assert doc.correct[mi, metric, j] == pytest.approx(np.mean(agrees))
                    if metric == 0 and m == 0:
                        assert doc.drop[mi, metric, j] == 0.0  # the same row: exactly no drop


def test_gradient_x_input_signed_is_the_autograd_of_the_summed_logprob(make_pair, lm, make_ids):
    batch = [
        make_pair(make_ids(7, seed=11), make_ids(4, seed=12)),
        make_pair(make_ids(3, seed=13), make_ids(2, seed=14)),
    ]
    signed = gradient_x_input_signed(lm, batch)
    l2 = gradient_x_input_l2_steps(lm, batch)
    emb = lm.model.get_input_embeddings()
    for enc, got, got_l2 in zip(batch, signed, l2):
        x = emb(torch.as_tensor(enc.input_ids)[None]).detach().requires_grad_()
        lp = torch.log_softmax(lm.model(inputs_embeds=x).logits[0].float(), -1)
        steps = [lp[t - 1, enc.input_ids[t]] for t in range(enc.response_start, len(enc))]
        (grad,) = torch.autograd.grad(torch.stack(steps).sum(), x, retain_graph=True)
        want = (grad * x)[0].sum(-1).detach().numpy()
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
        per_step = [(torch.autograd.grad(s, x, retain_graph=True)[0] * x)[0].detach() for s in steps]
        np.testing.assert_allclose(sum(g.sum(-1) for g in per_step).numpy(), want, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(
            got_l2, sum(g.norm(dim=-1) for g in per_step).numpy(), rtol=1e-4, atol=1e-6
        )
    assert all(p.grad is None for p in lm.model.parameters())  # no gradient left on the weights


def summed_logprob_by_hand(sm, embeds: torch.Tensor, ids: np.ndarray, start: int) -> torch.Tensor:
    """sum_t log p(y_t | context) of one unpadded row fed as (1, n, D) input embeddings."""
    lp = torch.log_softmax(sm.model(inputs_embeds=embeds).logits[0].double(), -1)
    return torch.stack([lp[t - 1, ids[t]] for t in range(start, len(ids))]).sum()


def test_integrated_gradients_against_a_riemann_sum_by_hand(make_pair, lm, make_ids):
    """Captum's Gauss-Legendre rule on a padded batch equals a 400-step midpoint Riemann sum on each
    pair alone; the scores add up to log p(response | context) - log p(response | every context
    token the baseline token) (completeness); the response's own positions score exactly 0."""
    batch = [
        make_pair(make_ids(8, seed=21), make_ids(4, seed=22)),
        make_pair(make_ids(3, seed=23), make_ids(2, seed=24)),
    ]
    got = integrated_gradients_response(lm, batch, MASK_ID, steps=50)
    emb = lm.model.get_input_embeddings()
    for enc, scores in zip(batch, got):
        x = emb(torch.as_tensor(enc.input_ids)[None]).detach()
        context = (torch.arange(len(enc)) < enc.response_start)[None, :, None]
        base = torch.where(context, emb(torch.full((1, len(enc)), MASK_ID)).detach(), x)
        total = torch.zeros_like(x)
        steps = 400
        for a in (np.arange(steps) + 0.5) / steps:
            point = (base + float(a) * (x - base)).requires_grad_()
            summed = summed_logprob_by_hand(lm, point, enc.input_ids, enc.response_start)
            (grad,) = torch.autograd.grad(summed, point)
            total += grad / steps
        want = ((x - base) * total)[0].sum(-1).numpy()
        assert scores.shape == (len(enc),)
        np.testing.assert_allclose(scores, want, rtol=1e-3, atol=1e-5 * np.abs(want).max())
        assert (scores[enc.response_start :] == 0).all()
        with torch.no_grad():
            gap = summed_logprob_by_hand(lm, x, enc.input_ids, enc.response_start) - summed_logprob_by_hand(
                lm, base, enc.input_ids, enc.response_start
            )
        assert scores.sum() == pytest.approx(float(gap), rel=1e-4, abs=1e-5)
    assert all(p.grad is None for p in lm.model.parameters())


def test_integrated_gradients_is_a_baseline_run_only_when_named(make_pair, lm, make_ids):
    batch = [make_pair(make_ids(6, seed=25), make_ids(3, seed=26))]
    assert "integrated_gradients" in RESPONSE_BASELINES
    assert "integrated_gradients" not in DEFAULT_RESPONSE_METHODS
    few, many = (
        RESPONSE_METHODS["integrated_gradients"].scores(Evidence(lm, batch, ["a"], 0, ig_steps=s))[0]
        for s in (2, 64)
    )
    direct = integrated_gradients_response(lm, batch, MASK_ID, steps=64)[0]
    np.testing.assert_allclose(many, direct, rtol=1e-5, atol=1e-7)
    assert not np.allclose(few, many, rtol=1e-4)  # the steps reach the method
    with pytest.raises(ValueError, match="ig_steps"):
        ResponseEvaluationOptions(ig_steps=0)


def test_variants_from_the_models_logits(make_pair, lm, make_ids):
    batch = [make_pair(make_ids(6, seed=15), make_ids(3, seed=16))]
    ev = Evidence(lm, batch, ["a"], 0)
    enc = batch[0]
    scores = score_responses(lm, batch, step_scores=True)
    norm, steps = scores.norm, scores.step_matrix(0)
    lp = model_logprobs(lm, enc.input_ids).numpy()
    by_hand = np.zeros(len(enc))
    for t in range(enc.response_start, len(enc)):  # step predicting y at position t, context i < t
        by_hand[:t] += norm[:t] * lp[:t, enc.input_ids[t]]
    (got,) = RESPONSE_METHODS["normxlogit_logprob"].scores(ev)
    np.testing.assert_allclose(got, by_hand, rtol=1e-4, atol=1e-4)
    (got_abs,) = RESPONSE_METHODS["normxlogit_abs"].scores(ev)
    np.testing.assert_allclose(got_abs, np.nansum(np.abs(steps), 1), rtol=1e-6)
    (got_norm,) = RESPONSE_METHODS["normxlogit_stepnorm"].scores(ev)
    np.testing.assert_allclose(got_norm, np.nansum(steps / np.nansum(np.abs(steps), 0), 1), rtol=1e-5)
    assert RESPONSE_METHODS["normxlogit_logprob"].ours and not RESPONSE_METHODS["normxlogit"].ours


def test_pairs_without_rankable_context_are_dead_letters(make_pair, lm, make_ids):
    only_bos = encoded_response(make_ids(3, seed=17), [T, R, R], [True, False, False], start=1)
    good = make_pair(make_ids(4, seed=18), make_ids(2, seed=19))
    err = RecordError("empty_response", "no tokens")
    heard = []
    out = evaluate_response_items(
        BatchEngine(lm),
        [only_bos, good, err],
        ["x", "y", "z"],
        ResponseEvaluationOptions(methods=("normxlogit",)),
        on_bucket=heard.append,
    )
    assert out[0].reason == NO_CONTEXT and out[2] is err
    assert heard == [BucketDone((1,), len(good))]  # progress hears of the evaluated pair only
    assert out[1].drop.shape == (1, 2, len(PERCENTS))
