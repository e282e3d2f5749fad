"""The notebook API: targets by name, id or per text, foils, record errors, batching budget."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

import normxlogit
from normxlogit.api import validate_layers

LABELS = {0: "negative", 1: "neutral", 2: "positive"}
TEXTS = [
    "A wonderful, heartfelt film.",
    "Dull plot and wooden dialogue; I left early, bored and tired of it all.",
    "Fine.",
    "The soundtrack alone is worth the ticket.",
]
TOL = dict(atol=1e-5, rtol=1e-5)


@pytest.fixture(scope="module")
def classifier(make_model, bert_tokenizer):
    model = make_model(
        "bert",
        "classification",
        vocab_size=bert_tokenizer.vocab_size,
        id2label=LABELS,
        label2id={v: k for k, v in LABELS.items()},
    )
    return normxlogit.prepare(model, bert_tokenizer)


@pytest.fixture(scope="module")
def masked_lm(make_model, bert_tokenizer):
    return normxlogit.prepare(
        make_model("bert", "masked_lm", vocab_size=bert_tokenizer.vocab_size), bert_tokenizer
    )


@pytest.fixture(scope="module")
def causal_lm(make_model, bpe_tokenizer):
    model = make_model("llama", "causal_lm", vocab_size=len(bpe_tokenizer))
    return normxlogit.prepare(model, bpe_tokenizer, padding_side="left")


def _class_logits(sm, text: str) -> torch.Tensor:
    """(n, C) the classifier head on every token's final vector (the authors' slicing)."""
    ids = sm.tokenizer(text, return_tensors="pt").input_ids
    with torch.no_grad():
        hidden = sm.model(ids, output_hidden_states=True).hidden_states[-1]
        m = sm.model
        return torch.cat([m.classifier(m.bert.pooler(hidden[:, i:])) for i in range(ids.shape[1])])


def test_score_encoded_budget_does_not_change_scores(classifier):
    encoded = normxlogit.encode_texts(classifier, TEXTS * 2)
    one_at_a_time = normxlogit.score_encoded(classifier, encoded, batch_tokens=1)
    all_at_once = normxlogit.score_encoded(classifier, encoded, batch_tokens=10**6)
    small = normxlogit.score_encoded(classifier, encoded, batch_tokens=40, layers=(1,))
    for a, b, c, e in zip(one_at_a_time, all_at_once, small, encoded):
        assert len(a.score) == len(e)  # results come back in input order
        for x in (b, c):
            np.testing.assert_allclose(a.score, x.score, **TOL)
            np.testing.assert_allclose(a.logat, x.logat, **TOL)
            assert a.target_id == x.target_id


def test_score_encoded_decoder_budget_left_padding(causal_lm):
    encoded = normxlogit.encode_texts(causal_lm, TEXTS)
    a = normxlogit.score_encoded(causal_lm, encoded, batch_tokens=1)
    b = normxlogit.score_encoded(causal_lm, encoded, batch_tokens=10**6)
    for x, y in zip(a, b):
        np.testing.assert_allclose(x.score, y.score, **TOL)


def test_named_class_and_int_id_target(classifier):
    by_name = normxlogit.score(classifier, TEXTS[0], target="positive")[0]
    by_id = normxlogit.score(classifier, TEXTS[0], target=2)[0]
    by_str_id = normxlogit.score(classifier, TEXTS[0], target="2")[0]
    want = _class_logits(classifier, TEXTS[0])[:, 2].numpy()
    for r in (by_name, by_id, by_str_id):
        assert r.attribution.target_id == 2
        assert r.target == "positive"
        np.testing.assert_allclose(r.attribution.logat, want, **TOL)


def test_per_text_targets(classifier):
    targets = ["negative", 1, None, "positive"]
    results = normxlogit.score(classifier, TEXTS, targets=targets)
    for text, target, r in zip(TEXTS, targets, results):
        logits = _class_logits(classifier, text)
        y = int(logits[0].argmax()) if target is None else {"negative": 0, 1: 1, "positive": 2}[target]
        assert r.attribution.target_id == y
        assert r.prediction == LABELS[int(logits[0].argmax())]
        np.testing.assert_allclose(r.attribution.logat, logits[:, y].numpy(), **TOL)
    with pytest.raises(ValueError, match="2 targets for 4 texts"):
        normxlogit.score(classifier, TEXTS, targets=["negative", 1])


def test_contrastive_foil_is_target_minus_foil(classifier):
    r = normxlogit.score(classifier, TEXTS[1], target="positive", foil="negative")[0]
    logits = _class_logits(classifier, TEXTS[1])
    assert (r.target, r.foil) == ("positive", "negative")
    assert r.attribution.foil_id == 0
    np.testing.assert_allclose(r.attribution.logat, (logits[:, 2] - logits[:, 0]).numpy(), **TOL)
    np.testing.assert_allclose(r.scores, r.attribution.norm * r.attribution.logat, rtol=1e-6)


@pytest.mark.parametrize("bad", ["happy", 3, -1, "7", "LABEL_0"])
def test_unknown_class_is_a_record_error(classifier, bad):
    with pytest.raises(normxlogit.RecordError) as err:
        normxlogit.score(classifier, TEXTS[0], target=bad)
    assert err.value.reason == "unknown_target"
    assert "negative" in str(err.value)  # the message lists the classes


def test_regression_head_has_no_target(make_model, bert_tokenizer):
    sm = normxlogit.prepare(
        make_model("bert", "classification", num_labels=1, vocab_size=bert_tokenizer.vocab_size),
        bert_tokenizer,
    )
    with pytest.raises(normxlogit.RecordError) as err:
        normxlogit.score(sm, TEXTS[0], target=0)
    assert err.value.reason == "unknown_target"
    r = normxlogit.score(sm, TEXTS[0])[0]
    assert r.target == "value" and float(r.prediction) == pytest.approx(
        r.attribution.prediction_value, rel=1e-5
    )


def test_lm_single_token_target_and_foil(causal_lm, bpe_tokenizer):
    text = "The capital of France is"
    paris = bpe_tokenizer.encode(" Paris", add_special_tokens=False)
    berlin = bpe_tokenizer.encode(" Berlin", add_special_tokens=False)
    assert len(paris) == len(berlin) == 1
    r = normxlogit.score(causal_lm, text, target=" Paris", foil=" Berlin")[0]
    assert (r.attribution.target_id, r.attribution.foil_id) == (paris[0], berlin[0])
    assert (r.target, r.foil) == (" Paris", " Berlin")
    ids = bpe_tokenizer(text, return_tensors="pt").input_ids
    with torch.no_grad():
        logits = causal_lm.model(ids).logits[0]
    assert r.attribution.logat[-1] == pytest.approx(
        float(logits[-1, paris[0]] - logits[-1, berlin[0]]), abs=1e-5
    )
    by_id = normxlogit.score(causal_lm, text, target=paris[0])[0]
    assert by_id.attribution.target_id == paris[0]
    np.testing.assert_allclose(by_id.attribution.logat, logits[:, paris[0]].numpy(), **TOL)


def test_lm_multi_token_target_is_a_record_error(causal_lm):
    with pytest.raises(normxlogit.RecordError) as err:
        normxlogit.score(causal_lm, "The capital of France is", target=" xylophone")
    assert err.value.reason == "multi_token_target"
    assert "xylophone" in str(err.value) and "one token" in str(err.value)


@pytest.mark.parametrize("bad", [10**6, -1])
def test_lm_token_id_outside_the_vocabulary_is_a_record_error(causal_lm, bad):
    """An id the output matrix has no row for must not crash the batch or fall back silently."""
    with pytest.raises(normxlogit.RecordError) as err:
        normxlogit.score(causal_lm, "The capital of France is", target=bad)
    assert err.value.reason == "unknown_target"


def test_masked_lm_needs_a_mask_token(masked_lm, bert_tokenizer):
    with pytest.raises(normxlogit.RecordError) as err:
        normxlogit.score(masked_lm, "The capital of France is Paris.")
    assert err.value.reason == "no_mask_token"
    assert "[MASK]" in str(err.value)
    r = normxlogit.score(masked_lm, "The capital of France is [MASK].", target="paris")[0]
    assert r.attribution.target_id == bert_tokenizer.convert_tokens_to_ids("paris")
    assert r.tokens[r.encoded.pooled_position] == "[MASK]"


def test_layers_must_be_in_range(classifier):
    assert validate_layers(classifier, [1, 2]) == (1, 2)
    for bad in ([0], [3], [1, -1]):
        with pytest.raises(ValueError, match=r"layers 1\.\.2"):
            normxlogit.score(classifier, TEXTS[0], layers=bad)


def test_score_layers_and_top_tokens(classifier):
    r = normxlogit.score(classifier, TEXTS[3], layers=(1, 2))[0]
    assert r.layers == (1, 2)
    np.testing.assert_allclose(r.attribution.layer_logat[:, 1], r.attribution.logat, atol=1e-6)
    top = r.top_tokens(3)
    assert len(top) == 3
    assert [t.score for t in top] == sorted((t.score for t in top), reverse=True)
    keep = ~r.encoded.special
    assert top[0].score == pytest.approx(float(r.scores[keep].max()))
    assert all(not r.encoded.special[t.position] for t in top)
    assert r.top_tokens(len(r.tokens), include_special=True)[0].score == pytest.approx(float(r.scores.max()))


def test_truncated_text_is_flagged(classifier):
    long = " ".join(["word"] * 200)
    r = normxlogit.score(classifier, [long, TEXTS[2]], max_length=16)
    assert r[0].encoded.truncated and len(r[0].tokens) == 16
    assert not r[1].encoded.truncated


def test_many_texts_stream_in_chunks_with_the_same_results(classifier, masked_lm, monkeypatch):
    from normxlogit import engine

    texts = [f"text number {i} " + "word " * (i % 7) for i in range(23)]
    whole = normxlogit.score(classifier, texts)
    encoded_in = []
    real = engine.BatchEngine.encode

    def spy(self, batch, targets=None):
        encoded_in.append((threading.current_thread().name, len(batch)))
        return real(self, batch, targets)

    monkeypatch.setattr(engine.BatchEngine, "encode", spy)
    stream = engine.BatchEngine(classifier).score_stream(texts, chunk=5)
    got = [r for lo, scored in stream for r in scored.results(texts[lo : lo + scored.size])]
    assert [n for _, n in encoded_in] == [5, 5, 5, 5, 3]
    assert {name.startswith("normxlogit-encode") for name, _ in encoded_in} == {True}  # encoded ahead
    assert [r.text for r in got] == texts
    for a, b in zip(got, whole):
        assert a.tokens == b.tokens and a.prediction == b.prediction
        np.testing.assert_allclose(a.scores, b.scores, rtol=1e-5, atol=1e-6)
    # A text that cannot be scored in a later chunk is still the error score() raises.
    texts = ["a [MASK] here"] * 7 + ["no mask"] + ["[MASK]"] * 3
    monkeypatch.setattr(engine.BatchEngine.score_stream, "__defaults__", (None, 4))
    with pytest.raises(normxlogit.RecordError, match="mask token"):
        normxlogit.score(masked_lm, texts)
