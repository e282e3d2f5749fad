"""``BatchEngine`` on responses: one run_planned loop (split and retry), errors in place, input order,
the budget that counts the step logits, and greedy generation through the same loop."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

import normxlogit.engine as engine_module
from normxlogit.engine import BatchEngine, EngineOptions
from normxlogit.errors import RecordError
from normxlogit.response_scoring import score_responses

from .conftest import forward_threads


@pytest.fixture
def pairs(make_pair, make_ids):
    return [
        make_pair(make_ids(p, seed=p), make_ids(t, seed=100 + p)) for p, t in ((5, 3), (9, 1), (4, 6), (7, 2))
    ]


def test_errors_stay_in_place_and_results_follow_the_input(make_sm, pairs, monkeypatch):
    sm = make_sm("llama", "causal_lm")
    items = [pairs[0], RecordError("missing_response", "no response"), *pairs[1:]]
    real = engine_module.score_prepared_responses
    sizes = []

    def fails_on_nine(model, prepared, step_scores=False, foil=None):  # on the model's forward thread
        sizes.append(len(prepared.padded.lengths))
        if (prepared.start == 9).any():
            raise RuntimeError("simulated out of memory")
        return real(model, prepared, step_scores, foil)

    monkeypatch.setattr(engine_module, "score_prepared_responses", fails_on_nine)
    heard = []
    scored = BatchEngine(sm).score_responses(items, step_scores=True, on_bucket=heard.append)
    assert scored.size == 5 and scored.index.tolist() == [0, 3, 4]
    assert sorted(i for bucket in heard for i in bucket.index) == [0, 3, 4]  # each scored pair once
    assert sum(bucket.tokens for bucket in heard) == scored.tokens
    assert {i: e.reason for i, e in scored.errors.items()} == {1: "missing_response", 2: "model_error"}
    assert max(sizes) > 1 and 1 in sizes, "the failing bucket is halved down to the bad pair"
    for d, enc in enumerate(scored.encoded):
        alone = score_responses(sm, [enc], step_scores=True)
        sl = scored.scores.document(d)
        np.testing.assert_allclose(scored.scores.score[sl], alone.score, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(
            scored.scores.step_matrix(d), alone.step_matrix(0), rtol=1e-5, atol=1e-6, equal_nan=True
        )
        assert scored.scores.prediction_id[d] == alone.prediction_id[0]
        assert scored.target[d] == sm.token_label(int(enc.response_ids[0]))
    assert scored.padded_tokens >= scored.tokens == sum(len(e) for e in scored.encoded)
    copy = pickle.loads(pickle.dumps(scored))  # crosses process boundaries with a shared model
    np.testing.assert_array_equal(copy.scores.score, scored.scores.score)


def test_budget_counts_the_step_logits(make_pair, make_sm, make_ids, monkeypatch):
    sm = make_sm("llama", "causal_lm")  # hidden size 32
    short = [make_pair(make_ids(8, seed=s), make_ids(1, seed=50 + s)) for s in range(4)]
    long = [make_pair(make_ids(4, seed=s), make_ids(28, seed=60 + s)) for s in range(4)]  # 32 tokens, T = 28
    budget = EngineOptions(batch_tokens=4 * 40)
    calls = []
    real = engine_module.score_prepared_responses

    def counted(model, prepared, step_scores=False, foil=None):
        calls.append(len(prepared.padded.lengths))
        return real(model, prepared, step_scores, foil)

    monkeypatch.setattr(engine_module, "score_prepared_responses", counted)
    BatchEngine(sm, budget).score_responses(short)
    assert calls == [4]  # each costs 9 + ceil(9 * 1 / 32) = 10: all four fit 160
    calls.clear()
    scored = BatchEngine(sm, budget).score_responses(long)
    assert calls == [2, 2]  # each costs 32 + 28 = 60: two per pass
    assert scored.padded_tokens == 4 * 32  # positions actually run, not the planning cost


def test_generate_uses_the_one_loop_and_equals_model_generate(make_pair, make_sm, make_ids, monkeypatch):
    sm = make_sm("llama", "causal_lm")
    engine = BatchEngine(sm, EngineOptions(max_length=40))
    prompts = [make_ids(n, seed=n) for n in (3, 6, 9)]
    monkeypatch.setattr(
        engine_module,
        "encode_prompt_batch",
        lambda texts, tok, adapter, max_length: [make_pair(p, np.zeros(0, np.int64)) for p in texts],
    )
    monkeypatch.setattr(
        engine_module, "append_generated", lambda prompt, ids, tok: make_pair(prompt.input_ids, ids)
    )
    items = engine.generate(prompts, max_new_tokens=5)
    for p, enc in zip(prompts, items):
        with torch.no_grad():
            ref = sm.model.generate(
                torch.as_tensor(p)[None], max_new_tokens=5, do_sample=False, pad_token_id=sm.pad_id
            )[0, len(p) :].numpy()
        eos = np.flatnonzero(np.isin(ref, [sm.model.generation_config.eos_token_id]))
        ref = ref[: eos[0] + 1] if len(eos) else ref
        np.testing.assert_array_equal(enc.response_ids, ref)
    scored = engine.score_responses(items)
    direct = score_responses(sm, items)
    np.testing.assert_allclose(scored.scores.score, direct.score, rtol=1e-5, atol=1e-6)


def test_responses_run_on_the_models_one_forward_thread(make_sm, pairs):
    """Response buckets are prepared in the caller and scored on the model's forward thread."""
    sm = make_sm("llama", "causal_lm")
    with forward_threads(sm) as threads:
        scored = BatchEngine(sm, EngineOptions(batch_tokens=24)).score_responses(pairs)
    assert scored.index.tolist() == [0, 1, 2, 3] and not scored.errors
    assert len(threads) == 1 and threads.pop().startswith("normxlogit-forward")
