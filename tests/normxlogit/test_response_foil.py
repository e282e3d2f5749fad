"""``--foil top`` in response runs: each step t scored against the model's own most likely token at
p_t other than y_t (METHOD.md's contrastive rule on "Responses of causal LMs").

The reference is the definition, literally: per step two separate plain next-token runs
(``scoring.score_batch``) on the prefix ending at p_t, one with target y_t and one with target f_t,
f_t read here from the model's own full logits; their difference, summed over the steps.
"""

from __future__ import annotations

import numpy as np
import pyarrow.compute as pc
import pytest
import torch

import normxlogit
from normxlogit.engine import BatchEngine
from normxlogit.response_scoring import score_responses
from normxlogit.response_spec import ResponseFoil
from normxlogit.responses import EncodedResponse, encode_response_batch
from normxlogit.schema import response_token_rows
from normxlogit.scoring import score_batch

RTOL = 1e-5
TOP = ResponseFoil.TOP


def model_logits(sm, ids: np.ndarray) -> torch.Tensor:
    """(n, V) float64 logits of the model's own forward pass on one unpadded sequence."""
    with torch.no_grad():
        return sm.model(torch.as_tensor(ids)[None]).logits[0].double()


def reference_foils(sm, enc: EncodedResponse) -> np.ndarray:
    """(T,) f_t: the highest-logit token at p_t other than y_t, from the model's full logits."""
    logits = model_logits(sm, enc.input_ids)
    r = enc.response_start
    out = []
    for t in range(enc.n_response):
        row = logits[r + t - 1].clone()
        row[int(enc.input_ids[r + t])] = -np.inf
        out.append(int(row.argmax()))
    return np.array(out)


def two_runs_per_step(sm, enc: EncodedResponse, foils: np.ndarray, make_encoded) -> np.ndarray:
    """(n, T) step matrix: NormXLogit(prefix, y_t) - NormXLogit(prefix, f_t), NaN where i > p_t."""
    n, r, T = len(enc), enc.response_start, enc.n_response
    steps = np.full((n, T), np.nan)
    for t in range(T):
        p = r + t - 1
        prefix = enc.input_ids[: p + 1]
        (target,) = score_batch(sm, [make_encoded(sm, prefix, target_id=int(enc.input_ids[r + t]))])
        (foil,) = score_batch(sm, [make_encoded(sm, prefix, target_id=int(foils[t]))])
        assert target.foil_id is None and foil.target_id == int(foils[t])
        steps[: p + 1, t] = target.score.astype(np.float64) - foil.score
    return steps


def check_against_two_runs(sm, batch, make_encoded, scores) -> None:
    for d, enc in enumerate(batch):
        rows = scores.document(d)
        foils = reference_foils(sm, enc)
        steps = two_runs_per_step(sm, enc, foils, make_encoded)
        ref = np.nansum(steps, axis=1)
        scale = np.abs(ref).max()
        np.testing.assert_allclose(scores.score[rows], ref, rtol=RTOL, atol=RTOL * scale)
        matrix = scores.step_matrix(d)
        np.testing.assert_array_equal(np.isnan(matrix), np.isnan(steps))
        np.testing.assert_allclose(matrix, steps, rtol=RTOL, atol=RTOL * np.nanmax(np.abs(steps)))
        np.testing.assert_allclose(scores.logat[rows] * scores.norm[rows], scores.score[rows], rtol=1e-5)
        foil_id = scores.foil_id[rows]
        assert (foil_id[: enc.response_start] == -1).all()
        np.testing.assert_array_equal(foil_id[enc.response_start :], foils)
        assert (foil_id[enc.response_start :] != enc.response_ids).all()


@pytest.mark.parametrize("side", ["left", "right"])
@pytest.mark.parametrize("model_type", ["llama", "gpt2"])
def test_foil_top_equals_two_separate_next_token_runs_per_step(
    make_pair, model_type, side, make_sm, make_ids, make_encoded
):
    sm = make_sm(model_type, "causal_lm", padding_side=side)
    shapes = [(3, 4), (7, 1), (1, 6)]  # padding inside every row but one
    batch = [make_pair(make_ids(p, seed=30 + k), make_ids(t, seed=40 + k)) for k, (p, t) in enumerate(shapes)]
    scores = score_responses(sm, batch, step_scores=True, foil=TOP)
    check_against_two_runs(sm, batch, make_encoded, scores)
    # The foil changes the scores, not the rest: log-probabilities and the first prediction stay.
    plain = score_responses(sm, batch)
    np.testing.assert_allclose(scores.norm, plain.norm, rtol=1e-6)
    np.testing.assert_array_equal(scores.n_steps, plain.n_steps)
    np.testing.assert_allclose(scores.target_logprob, plain.target_logprob, rtol=1e-6, equal_nan=True)
    np.testing.assert_array_equal(scores.prediction_id, plain.prediction_id)
    assert (plain.foil_id == -1).all()
    assert not np.allclose(scores.score, plain.score)


@pytest.mark.parametrize("model_type", ["llama", "gpt2"])
def test_a_step_whose_target_is_the_argmax_gets_the_runner_up(
    model_type, make_sm, make_ids, make_pair, make_encoded
):
    sm = make_sm(model_type, "causal_lm")
    prompt = make_ids(4, seed=5)
    ids = prompt.copy()
    for _ in range(3):  # a greedy answer: every y_t is the model's argmax at p_t
        ids = np.r_[ids, int(model_logits(sm, ids)[-1].argmax())]
    random_step = make_ids(1, seed=6)
    enc = make_pair(prompt, np.r_[ids[len(prompt) :], random_step])
    logits = model_logits(sm, enc.input_ids)
    ranked = logits[len(prompt) - 1 : -1].argsort(-1, descending=True)[:, :2].numpy()  # (T, 2)
    scores = score_responses(sm, [enc], step_scores=True, foil=TOP)
    foil = scores.foil_id[len(prompt) :]
    np.testing.assert_array_equal(ranked[:3, 0], enc.response_ids[:3])  # the greedy steps' targets are first
    np.testing.assert_array_equal(foil[:3], ranked[:3, 1])  # ... so their foil is the second best
    assert ranked[3, 0] != enc.response_ids[3] and foil[3] == ranked[3, 0]  # else the best
    check_against_two_runs(sm, [enc], make_encoded, scores)


def test_response_rows_name_each_steps_foil(tiny_causal_lm):
    sm = normxlogit.load_model(tiny_causal_lm)
    engine = BatchEngine(sm)
    encoded = engine.encode_responses(["The capital of France is", "Two plus two"], [" Paris.", " four"])
    scored = engine.score_responses(encoded, foil=TOP)
    rows = response_token_rows(scored, ["a", "b"], ["s", "s"])
    response = pc.is_valid(rows["response_step"]).to_numpy(zero_copy_only=False)
    foil_id = rows["foil_id"].to_numpy(zero_copy_only=False)
    assert rows["foil_id"].null_count == rows["foil"].null_count == int((~response).sum())
    np.testing.assert_array_equal(foil_id[response], scored.scores.foil_id[response])
    assert rows["foil"].to_pylist() == [
        sm.token_label(int(i)) if ok else None for i, ok in zip(scored.scores.foil_id, response)
    ]
    core = score_responses(
        sm,
        encode_response_batch(
            ["The capital of France is", "Two plus two"],
            [" Paris.", " four"],
            sm.tokenizer,
            sm.adapter,
            max_length=128,
        ),
        foil=TOP,
    )
    np.testing.assert_allclose(rows["score"].to_numpy(), core.score, rtol=1e-5, atol=1e-6)
    plain = response_token_rows(engine.score_responses(encoded), ["a", "b"], ["s", "s"])
    assert plain["foil"].null_count == plain["foil_id"].null_count == plain.num_rows


def test_budget_counts_the_foil_rows(make_pair, make_sm, make_ids, monkeypatch):
    import normxlogit.engine as engine_module
    from normxlogit.engine import EngineOptions

    sm = make_sm("llama", "causal_lm")  # hidden size 32
    pairs = [make_pair(make_ids(4, seed=s), make_ids(28, seed=60 + s)) for s in range(4)]  # n = 32, T = 28
    calls = []
    real = engine_module.score_prepared_responses

    def counted(model, prepared, step_scores=False, foil=None):
        calls.append(len(prepared.padded.lengths))
        return real(model, prepared, step_scores, foil)

    monkeypatch.setattr(engine_module, "score_prepared_responses", counted)
    engine = BatchEngine(sm, EngineOptions(batch_tokens=4 * 40))
    engine.score_responses(pairs)
    assert calls == [2, 2]  # 32 + 28 = 60 each: two per pass
    calls.clear()
    engine.score_responses(pairs, foil=TOP)
    assert calls == [1, 1, 1, 1]  # 32 + 2 * 28 = 88 each: the foils' rows count too
