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
from normxlogit.response_baselines import gradient_x_input_l2_steps, gradient_x_input_signed
from normxlogit.response_evaluation import (
    NO_CONTEXT,
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
