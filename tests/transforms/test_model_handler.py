"""The ModelHandler: per-record encoding errors and model failures become dead letters."""

from __future__ import annotations

import numpy as np
import pytest

import normxlogit
from normxlogit.transforms import model_handler
from normxlogit.transforms.model_handler import ModelSpec, NormXLogitModelHandler, ScoringOptions
from normxlogit.transforms.records import SourceRecord

# Equal token lengths: the five texts share one forward pass (padding is capped per batch).
TEXTS = [
    "the first text here",
    "poison in this text",
    "a third text here",
    "the fourth one here",
    "the fifth and last",
]


@pytest.fixture(scope="module")
def handler_and_model(tiny_classifier):
    handler = NormXLogitModelHandler(
        ModelSpec(path=str(tiny_classifier)), ScoringOptions(batch_tokens=4096, docs_per_batch=8)
    )
    return handler, handler.load_model()


def _records(texts, target=None):
    return [SourceRecord("mem.txt", f"line {i + 1}", f"d{i}", t, target) for i, t in enumerate(texts)]


def test_failing_batch_is_split_until_the_bad_record_is_alone(handler_and_model, monkeypatch):
    handler, sm = handler_and_model
    poison = sm.tokenizer.convert_tokens_to_ids("poison")
    real = model_handler.score_batch
    sizes = []

    def flaky(model, batch, layers=()):
        sizes.append(len(batch))
        if any(poison in e.input_ids for e in batch):
            raise RuntimeError("CUDA out of memory (simulated)")
        return real(model, batch, layers)

    monkeypatch.setattr(model_handler, "score_batch", flaky)
    out = handler.run_inference(_records(TEXTS), sm)

    assert [d.record.doc_id for d in out] == [f"d{i}" for i in range(5)]
    bad = out[1]
    assert bad.result is None and bad.error.reason == "model_error"
    assert "out of memory" in bad.error.message and bad.error.locator == "line 2"
    assert all(d.result is not None for i, d in enumerate(out) if i != 1)
    assert sizes[0] == 5 and 1 in sizes, "one forward pass first, then halves down to one text"
    expected = normxlogit.score(sm, [TEXTS[0]])[0]
    np.testing.assert_allclose(out[0].result.scores, expected.scores, rtol=1e-5, atol=1e-6)


def test_bad_target_is_a_dead_letter_not_a_crash(handler_and_model):
    handler, sm = handler_and_model
    out = handler.run_inference(_records(["fine text", "also fine"], target="no-such-class"), sm)
    assert [d.error.reason for d in out] == ["unknown_target", "unknown_target"]


def test_record_target_overrides_run_target(handler_and_model):
    handler, sm = handler_and_model
    records = [
        SourceRecord("m", "row 1", "a", "nice", "positive"),
        SourceRecord("m", "row 2", "b", "nice", None),
    ]
    out = handler.run_inference(records, sm)
    assert out[0].result.target == "positive"
    assert out[1].result.target == out[1].result.prediction


def test_record_errors_in_a_batch_leave_their_neighbours_scored(handler_and_model):
    handler, sm = handler_and_model
    long_text = "word " * 400  # over the tiny model's 128 positions: truncated, still scored
    records = [
        SourceRecord("m", "row 1", "a", "nice", "positive"),
        SourceRecord("m", "row 2", "b", "nice", "no-such-class"),
        SourceRecord("m", "row 3", "c", long_text, "negative"),
        SourceRecord("m", "row 4", "d", "awful", "0"),
    ]
    out = handler.run_inference(records, sm)
    assert out[1].result is None and out[1].error.reason == "unknown_target"
    assert out[1].error.locator == "row 2" and "no-such-class" in out[1].error.message
    assert [out[i].result.target for i in (0, 2, 3)] == ["positive", "negative", "negative"]
    assert out[2].result.encoded.truncated and len(out[2].result.encoded) == sm.max_length
    for i in (0, 2, 3):
        alone = normxlogit.encode_text(
            records[i].text,
            sm.tokenizer,
            sm.model,
            sm.adapter,
            max_length=sm.max_length,
            target=records[i].target,
        )
        assert out[i].result.encoded.input_ids.tolist() == alone.input_ids.tolist()
        assert out[i].result.encoded.word_index.tolist() == alone.word_index.tolist()
