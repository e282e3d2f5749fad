"""Token rows: ``to_record_batch`` follows ``token_schema()`` and carries the scores unchanged."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

import normxlogit

LABELS = {0: "negative", 1: "positive"}


@pytest.fixture(scope="module")
def classifier(make_model, bert_tokenizer):
    model = make_model(
        "bert",
        "classification",
        num_labels=2,
        vocab_size=bert_tokenizer.vocab_size,
        id2label=LABELS,
        label2id={v: k for k, v in LABELS.items()},
    )
    return normxlogit.prepare(model, bert_tokenizer)


def _check_rows(rb: pa.RecordBatch, result, doc_id: str, source: str):
    enc, att = result.encoded, result.attribution
    n = len(enc)
    assert rb.num_rows == n
    cols = rb.to_pydict()
    assert cols["doc_id"] == [doc_id] * n and cols["source"] == [source] * n
    assert cols["position"] == list(range(n))
    assert cols["token_id"] == enc.input_ids.tolist()
    assert cols["token"] == enc.tokens
    assert cols["char_start"] == enc.offsets[:, 0].tolist() and cols["char_end"] == enc.offsets[:, 1].tolist()
    assert cols["word_index"] == [None if w < 0 else w for w in enc.word_index.tolist()]
    assert cols["special"] == enc.special.tolist()
    for name in ("norm", "logat", "score"):
        np.testing.assert_array_equal(rb.column(name).to_numpy(), getattr(att, name))
    assert cols["target"] == [result.target] * n and cols["target_id"] == [att.target_id] * n
    assert cols["foil"] == [result.foil] * n and cols["foil_id"] == [att.foil_id] * n
    assert cols["prediction"] == [result.prediction] * n
    assert cols["prediction_id"] == [att.prediction_id] * n
    assert cols["truncated"] == [enc.truncated] * n


def test_classifier_rows_follow_the_schema(classifier):
    results = normxlogit.score(
        classifier, ["A wonderful film.", "Dull plot, wooden dialogue."], target="positive", foil="negative"
    )
    for i, r in enumerate(results):
        rb = normxlogit.to_record_batch(r, f"d{i}", "reviews.jsonl")
        assert rb.schema.equals(normxlogit.token_schema(), check_metadata=True)
        _check_rows(rb, r, f"d{i}", "reviews.jsonl")
        assert rb.column("foil").to_pylist()[0] == "negative"
        assert rb.column("prediction_prob").to_pylist()[0] == pytest.approx(r.attribution.prediction_prob)
    table = pa.Table.from_batches([normxlogit.to_record_batch(r, "d", "s") for r in results])
    assert table.schema.equals(normxlogit.token_schema())


def test_layer_columns(classifier):
    r = normxlogit.score(classifier, "A wonderful film.", layers=(1, 2))[0]
    rb = normxlogit.to_record_batch(r, "d", "s", with_layers=True)
    assert rb.schema.equals(normxlogit.token_schema(with_layers=True))
    assert not normxlogit.token_schema().equals(normxlogit.token_schema(with_layers=True))
    _check_rows(rb, r, "d", "s")
    logat_layers = np.array(rb.column("logat_layers").to_pylist(), dtype=np.float32)
    score_layers = np.array(rb.column("score_layers").to_pylist(), dtype=np.float32)
    np.testing.assert_array_equal(logat_layers, r.attribution.layer_logat)
    np.testing.assert_allclose(
        score_layers, r.attribution.layer_logat * r.attribution.norm[:, None], rtol=1e-6
    )
    np.testing.assert_allclose(score_layers[:, -1], r.scores, rtol=1e-5, atol=1e-6)


def test_regression_rows_have_null_prediction_fields(make_model, bert_tokenizer):
    sm = normxlogit.prepare(
        make_model("bert", "classification", num_labels=1, vocab_size=bert_tokenizer.vocab_size),
        bert_tokenizer,
    )
    r = normxlogit.score(sm, "A wonderful film.")[0]
    rb = normxlogit.to_record_batch(r, "d", "s")
    assert rb.schema.equals(normxlogit.token_schema())
    _check_rows(rb, r, "d", "s")
    assert rb.column("prediction_id").null_count == rb.num_rows
    assert rb.column("prediction_prob").null_count == rb.num_rows
    assert rb.column("target").to_pylist()[0] == "value"


def test_lm_rows(make_model, bpe_tokenizer):
    sm = normxlogit.prepare(make_model("llama", "causal_lm", vocab_size=len(bpe_tokenizer)), bpe_tokenizer)
    r = normxlogit.score(sm, "The capital of France is", target=" Paris")[0]
    rb = normxlogit.to_record_batch(r, "p1", "prompts.txt")
    assert rb.schema.equals(normxlogit.token_schema())
    _check_rows(rb, r, "p1", "prompts.txt")
    assert rb.column("target").to_pylist()[0] == " Paris"
    assert rb.column("word_index").to_pylist()[0] is None  # <s>
