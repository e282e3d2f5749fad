"""The ModelHandler: per-record encoding errors and model failures become dead letters."""

from __future__ import annotations

import gc

import numpy as np
import pytest

import normxlogit
from normxlogit import engine as engine_module
from normxlogit.engine import EngineOptions
from normxlogit.schema import document_schema
from normxlogit.transforms.model_handler import ModelSpec, NormXLogitModelHandler, ScoringOptions
from normxlogit.transforms.records import Locator, SourceRecord

# Equal token lengths: the five texts share one forward pass (padding is capped per batch).
TEXTS = [
    "the first text here",
    "poison in this text",
    "a third text here",
    "the fourth one here",
    "the fifth and last",
]


@pytest.fixture(scope="module")
def handler_and_engine(tiny_classifier):
    handler = NormXLogitModelHandler(
        ModelSpec(path=str(tiny_classifier)),
        ScoringOptions(EngineOptions(batch_tokens=4096), docs_per_batch=8),
    )
    engine = handler.load_model()
    gc.unfreeze()  # load_model froze the test process's heap (a worker's; see the test below)
    return handler, engine


def test_loading_the_model_freezes_the_workers_heap_with_the_model_in_it(tiny_classifier):
    """A worker's long-lived objects (the model's modules) leave the collector's full passes."""
    handler = NormXLogitModelHandler(ModelSpec(path=str(tiny_classifier)), ScoringOptions())
    before = gc.get_freeze_count()
    try:
        engine = handler.load_model()
        assert gc.get_freeze_count() > before
        model = engine.model.model
        assert all(o is not model for o in gc.get_objects())  # frozen: in no generation
    finally:
        gc.unfreeze()


def _records(texts, target=None):
    return [SourceRecord("mem.txt", Locator.line(i + 1), f"d{i}", t, target) for i, t in enumerate(texts)]


def _run_inference(handler, engine, records):
    (out,) = handler.run_inference(records, engine)
    assert out.rows.schema == normxlogit.token_schema()
    assert out.documents.schema == document_schema()
    assert out.rows.num_rows == sum(out.documents.column("n_tokens").to_pylist())
    assert out.documents.num_rows + len(out.dead) == len(records)
    return out


def test_failing_batch_is_split_until_the_bad_record_is_alone(handler_and_engine, monkeypatch):
    handler, engine = handler_and_engine
    sm = engine.model
    poison = sm.tokenizer.convert_tokens_to_ids("poison")
    real = engine_module.score_prepared
    sizes = []

    def flaky(model, prepared, layers=()):  # on the model's forward thread
        sizes.append(len(prepared.padded.lengths))
        if (prepared.padded.input_ids == poison).any():
            raise RuntimeError("CUDA out of memory (simulated)")
        return real(model, prepared, layers)

    monkeypatch.setattr(engine_module, "score_prepared", flaky)
    out = _run_inference(handler, engine, _records(TEXTS))

    assert out.documents.column("doc_id").to_pylist() == ["d0", "d2", "d3", "d4"]
    [bad] = out.dead
    assert bad.reason == "model_error" and bad.doc_id == "d1" and bad.locator == Locator.line(2)
    assert "out of memory" in bad.message
    assert sizes[0] == 5 and 1 in sizes, "one forward pass first, then halves down to one text"
    assert out.padded_tokens == sum(out.documents.column("n_tokens").to_pylist())  # equal lengths
    expected = normxlogit.score(sm, [TEXTS[0]])[0]
    rows = out.rows.to_pydict()
    first = [i for i, d in enumerate(rows["doc_id"]) if d == "d0"]
    np.testing.assert_allclose([rows["score"][i] for i in first], expected.scores, rtol=1e-5, atol=1e-6)


def test_bad_target_is_a_dead_letter_not_a_crash(handler_and_engine):
    out = _run_inference(*handler_and_engine, _records(["fine text", "also fine"], target="no-such-class"))
    assert [d.reason for d in out.dead] == ["unknown_target", "unknown_target"]
    assert out.rows.num_rows == 0 and out.documents.num_rows == 0


def test_record_target_overrides_run_target(handler_and_engine):
    records = [
        SourceRecord("m", Locator.row(1), "a", "nice", "positive"),
        SourceRecord("m", Locator.row(2), "b", "nice", None),
    ]
    docs = _run_inference(*handler_and_engine, records).documents.to_pydict()
    assert docs["target"][0] == "positive"
    assert docs["target"][1] == docs["prediction"][1]


def test_record_errors_in_a_batch_leave_their_neighbours_scored(handler_and_engine):
    handler, engine = handler_and_engine
    sm = engine.model
    long_text = "word " * 400  # over the tiny model's 128 positions: truncated, still scored
    records = [
        SourceRecord("m", Locator.row(1), "a", "nice", "positive"),
        SourceRecord("m", Locator.row(2), "b", "nice", "no-such-class"),
        SourceRecord("m", Locator.row(3), "c", long_text, "negative"),
        SourceRecord("m", Locator.row(4), "d", "awful", "0"),
    ]
    out = _run_inference(handler, engine, records)
    [bad] = out.dead
    assert bad.reason == "unknown_target" and bad.locator == Locator.row(2) and "no-such-class" in bad.message
    docs = out.documents.to_pydict()
    assert docs["doc_id"] == ["a", "c", "d"]
    assert docs["target"] == ["positive", "negative", "negative"]
    assert docs["truncated"] == [False, True, False] and docs["n_tokens"][1] == sm.max_length
    assert docs["text"] == [records[i].text for i in (0, 2, 3)]
    rows = out.rows.to_pydict()
    for i in (0, 2, 3):
        alone = normxlogit.encode_text(
            records[i].text,
            sm.tokenizer,
            sm.model,
            sm.adapter,
            max_length=sm.max_length,
            target=records[i].target,
        )
        mine = [k for k, d in enumerate(rows["doc_id"]) if d == records[i].doc_id]
        assert [rows["token_id"][k] for k in mine] == alone.input_ids.tolist()
        assert [rows["position"][k] for k in mine] == list(range(len(alone)))
        want_words = [None if w < 0 else w for w in alone.word_index.tolist()]
        assert [rows["word_index"][k] for k in mine] == want_words
