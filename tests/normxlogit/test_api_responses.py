"""The notebook API for responses of causal LMs (``score_responses``, ``score_chats``,
``generate_and_score``): the same rows as ``normxlogit annotate`` for the same inputs, step scores,
errors naming their input, input order, and the Jupyter display."""

from __future__ import annotations

import json
import shutil
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pytest
from transformers import AutoTokenizer

import normxlogit
from normxlogit.chat import ChatTemplateError
from normxlogit.display import color_scale
from normxlogit.heads import UnsupportedModelError
from normxlogit.schema import DOCUMENT_COLUMNS, RESPONSE_DOCUMENT_COLUMNS
from normxlogit.transforms.layout import DOCUMENTS

# SmolLM2's ChatML shape for the tiny model's BERT tokenizer: [unused1] opens a turn, [unused2] ends it.
CHATML = (
    "{% for m in messages %}[unused1]{{ m['role'] }}\n{{ m['content'] }}[unused2]\n{% endfor %}"
    "{% if add_generation_prompt %}[unused1]assistant\n{% endif %}"
)
PROMPTS = [
    "The capital of France is",
    "Two plus two equals",
    "Write a haiku about rain on a tin roof, and make it about the sound at night.",
]
ANSWERS = [" Paris, a large city.", " four", "Drops drum on the tin; night listens."]
CHATS = [
    [
        {"role": "user", "content": "Who wrote Romeo and Juliet?"},
        {"role": "assistant", "content": "Dickens."},
    ],
    [
        {"role": "system", "content": "You answer briefly."},
        {"role": "user", "content": "Two plus two?"},
        {"role": "assistant", "content": "Four, of course."},
    ],
]
# Columns whose values are computed in floating point: equal to a relative 1e-5 (the rest exactly).
FLOAT_COLUMNS = {"norm", "logat", "score", "prediction_prob", "target_logprob", "response_logprob"}
IDS = ("doc_id", "source")


@pytest.fixture(scope="module")
def chat_lm(tiny_causal_lm, tmp_path_factory) -> Path:
    """The tiny random Llama (``tiny_causal_lm``) with a ChatML-like template on its tokenizer."""
    folder = tmp_path_factory.mktemp("api-chatml-lm")
    shutil.copytree(tiny_causal_lm, folder, dirs_exist_ok=True)
    tok = AutoTokenizer.from_pretrained(folder)
    tok.chat_template = CHATML
    tok.add_special_tokens({"additional_special_tokens": ["[unused1]", "[unused2]"]})
    tok.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def sm(chat_lm):
    return normxlogit.load_model(chat_lm)


def annotate(cli, tmp_path: Path, model: Path, records: list[dict], *flags) -> tuple[pa.Table, pa.Table]:
    """``normxlogit annotate`` on JSON Lines ``records`` (ids r0, r1, ...): (token rows, documents)."""
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"id": f"r{i}", **r}) + "\n" for i, r in enumerate(records)))
    out = tmp_path / "out"
    assert cli.annotate(src, "--output", out, "--model", model, "--id-field", "id", *flags) == 0
    rows = ds.dataset(out / "attributions", format="parquet").to_table()
    docs = ds.dataset(out / DOCUMENTS.folder, format="parquet").to_table()
    return rows, docs


def of_doc(table: pa.Table, doc_id: str) -> pa.Table:
    return table.filter(pc.equal(table["doc_id"], doc_id))


def assert_same_table(ours: pa.Table, theirs: pa.Table) -> None:
    """Equal tables but for the ids: same columns and types, floats to 1e-5, the rest exactly."""
    ours, theirs = ours.drop_columns(list(IDS)), theirs.drop_columns(list(IDS))
    assert ours.column_names == theirs.column_names
    assert [f.type for f in ours.schema] == [f.type for f in theirs.schema]
    assert ours.num_rows == theirs.num_rows > 0
    for name in ours.column_names:
        a, b = ours[name].combine_chunks(), theirs[name].combine_chunks()
        if name == "step_scores":
            assert pc.list_value_length(a).to_pylist() == pc.list_value_length(b).to_pylist()
            a, b = a.flatten(), b.flatten()
        elif name not in FLOAT_COLUMNS:
            assert a.to_pylist() == b.to_pylist(), name
            continue
        assert a.null_count == b.null_count, name
        np.testing.assert_allclose(
            a.to_numpy(zero_copy_only=False),
            b.to_numpy(zero_copy_only=False),
            rtol=1e-5,
            atol=1e-7,
            equal_nan=True,
            err_msg=name,
        )


def assert_equals_pipeline(results, rows: pa.Table, docs: pa.Table) -> None:
    """Each result's token rows and document row equal the run's for the same input."""
    assert len(results) == docs.num_rows
    for i, r in enumerate(results):
        assert r.doc_id == str(i)
        assert_same_table(r.rows, of_doc(rows, f"r{i}").sort_by("position"))
        document = pa.Table.from_pylist([r.document()], schema=of_doc(docs, f"r{i}").schema)
        assert_same_table(document, of_doc(docs, f"r{i}"))


def test_score_responses_equals_the_pipeline_rows(cli, tmp_path, chat_lm, sm):
    records = [{"prompt": p, "answer": a} for p, a in zip(PROMPTS, ANSWERS)]
    flags = ("--text-field", "prompt", "--response-field", "answer", "--step-scores")
    rows, docs = annotate(cli, tmp_path, chat_lm, records, *flags)

    stepped = normxlogit.score_responses(sm, PROMPTS, ANSWERS, step_scores=True)
    assert_equals_pipeline(stepped, rows, docs)
    # Without step scores: the same rows less the step_scores column.
    plain = normxlogit.score_responses(str(chat_lm), PROMPTS, ANSWERS)  # a path, as score takes it
    assert_equals_pipeline(plain, rows.drop_columns(["step_scores"]), docs)
    assert all(r.kind == "response" and r.generated is None and r.step_scores is None for r in plain)
    for r, answer in zip(stepped, ANSWERS):
        assert r.response.strip() == answer.strip()
        assert r.segments == ["prompt"] * r.response_start + ["response"] * r.n_response_tokens


def test_score_chats_equals_the_pipeline_rows(cli, tmp_path, chat_lm, sm):
    rows, docs = annotate(
        cli, tmp_path, chat_lm, [{"messages": m} for m in CHATS], "--messages-field", "messages"
    )

    results = normxlogit.score_chats(sm, CHATS)
    assert_equals_pipeline(results, rows, docs)
    assert [r.kind for r in results] == ["chat", "chat"]
    assert {"template", "user", "response"} <= set(results[0].segments)
    assert "system" in results[1].segments


def test_generate_and_score_equals_the_pipeline_rows(cli, tmp_path, chat_lm, sm):
    records = [{"prompt": p} for p in PROMPTS]
    rows, docs = annotate(cli, tmp_path, chat_lm, records, "--text-field", "prompt", "--generate", 5)

    results = normxlogit.generate_and_score(sm, PROMPTS, max_new_tokens=5)
    assert_equals_pipeline(results, rows, docs)
    for r in results:
        assert r.kind == "generate" and r.generated == r.response
        assert 1 <= r.n_response_tokens <= 5
        assert r.target == r.prediction  # the model's own greedy answer begins as it would


def test_step_scores_sum_to_the_summed_score(sm):
    (r,) = normxlogit.score_responses(sm, PROMPTS[0], ANSWERS[0], step_scores=True)
    steps = r.step_scores
    assert steps.shape == (r.n_tokens, r.n_response_tokens) == (len(r.tokens), r.n_response_tokens)
    np.testing.assert_allclose(np.nansum(steps, axis=1), r.scores, rtol=1e-4, atol=1e-6)
    # Step t applies to positions 0..p_t (p_t = the position just before y_t): n_steps of each.
    np.testing.assert_array_equal((~np.isnan(steps)).sum(axis=1), r.n_steps)
    responses = r.response_steps
    assert responses.tolist() == [-1] * r.response_start + list(range(1, r.n_response_tokens + 1))
    assert np.isnan(r.target_logprobs[: r.response_start]).all()
    assert r.response_logprob == pytest.approx(
        float(np.mean(r.target_logprobs[r.response_start :])), rel=1e-5
    )
    assert r.to_arrow() is r.rows and list(r.to_pandas().columns) == r.rows.column_names
    spans = r.char_spans
    assert [r.text[a:b] for a, b in spans[r.response_start :].tolist()] == r.tokens[r.response_start :]


def test_results_follow_input_order_when_lengths_differ(sm):
    prompts = [PROMPTS[2], PROMPTS[1], "Say", PROMPTS[0]]
    answers = [ANSWERS[2], ANSWERS[1], " something long enough to sort differently, surely.", ANSWERS[0]]
    # A small budget: several length-sorted buckets, none in input order.
    together = normxlogit.score_responses(sm, prompts, answers, batch_tokens=48)
    assert [r.doc_id for r in together] == ["0", "1", "2", "3"]
    for p, a, r in zip(prompts, answers, together):
        (alone,) = normxlogit.score_responses(sm, p, a)
        assert r.text == alone.text and r.text.startswith(p)
        assert r.tokens == alone.tokens
        np.testing.assert_allclose(r.scores, alone.scores, rtol=1e-5, atol=1e-7)
    chats = normxlogit.score_chats(sm, CHATS[::-1], batch_tokens=48)
    assert [r.text for r in chats] == [r.text for r in normxlogit.score_chats(sm, CHATS)][::-1]


@pytest.mark.parametrize(
    ("prompts", "responses", "index", "reason"),
    [
        (["a", "b", "c"], [" x", " y", None], 2, "null_response"),
        (["a", "b", "c"], [" x", 7, " z"], 1, "non_string_response"),
        (["a", "b", "c"], [" x", "", " z"], 1, "empty_response"),
        (["a", None, "c"], [" x", " y", " z"], 1, "null_text"),
        (["a", "b", 3], [" x", " y", " z"], 2, "non_string_text"),
        (["a", "  ", "c"], [" x", " y", " z"], 1, "blank_prompt"),
        (["a", "b", "c"], [" x\x00", " y", " z"], 0, "nul_bytes"),
        (["a", "b\ud800", "c"], [" x", " y", " z"], 1, "invalid_unicode"),
    ],
)
def test_a_bad_pair_is_a_record_error_naming_its_input(sm, prompts, responses, index, reason):
    with pytest.raises(normxlogit.RecordError) as err:
        normxlogit.score_responses(sm, prompts, responses)
    assert err.value.reason == reason and err.value.index == index
    assert str(err.value).startswith(f"input {index} cannot be scored ({reason}): ")


@pytest.mark.parametrize(
    ("conversation", "reason"),
    [
        ([{"role": "user", "content": "Hi"}], "no_assistant_response"),
        ("not a chat", "malformed_messages"),
        (None, "null_messages"),
        ([{"role": "user", "content": "Hi\x00"}, {"role": "assistant", "content": "Yo"}], "nul_bytes"),
    ],
)
def test_a_bad_conversation_is_a_record_error_naming_its_input(sm, conversation, reason):
    with pytest.raises(normxlogit.RecordError) as err:
        normxlogit.score_chats(sm, [CHATS[0], conversation])
    assert (err.value.reason, err.value.index) == (reason, 1)
    assert "input 1" in str(err.value)


def test_refusals_of_the_whole_call(sm, tiny_causal_lm, tiny_classifier):
    with pytest.raises(ValueError, match="2 responses for 3 prompts"):
        normxlogit.score_responses(sm, PROMPTS, ANSWERS[:2])
    with pytest.raises(UnsupportedModelError, match="needs a causal language model"):
        normxlogit.score_responses(tiny_classifier, PROMPTS[:1], ANSWERS[:1])
    with pytest.raises(ChatTemplateError):
        normxlogit.score_chats(tiny_causal_lm, CHATS)  # its tokenizer has no chat template
    with pytest.raises(ValueError, match="at least 1"):
        normxlogit.generate_and_score(sm, PROMPTS, max_new_tokens=0)
    with pytest.raises(ValueError, match="no room for a prompt in 16 tokens"):
        normxlogit.generate_and_score(sm, PROMPTS, max_new_tokens=16, max_length=16)


class Spans(HTMLParser):
    """Each token span of a result's HTML: (style, title, text)."""

    def __init__(self):
        super().__init__()
        self.spans, self._open = [], None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "span" and "title" in attrs:
            self._open = [attrs["style"], attrs["title"], ""]
            self.spans.append(self._open)

    def handle_endtag(self, tag):
        self._open = None

    def handle_data(self, data):
        if self._open is not None:
            self._open[2] += data


def test_html_escapes_tokens_and_underlines_the_response(sm):
    prompt, answer = "Is <script>alert(1)</script> & safe?", " No <b>never</b>."
    (r,) = normxlogit.score_responses(sm, prompt, answer)
    html = r._repr_html_()
    assert "<script" not in html and "<b>never" not in html and "<b>" not in html.split("</div>", 1)[1]
    assert ">&lt;</span>" in html and ">&amp;</span>" in html
    parser = Spans()
    parser.feed(html)
    underlined = [s for s in parser.spans if "text-decoration:underline" in s[0]]
    assert "".join(s[2] for s in underlined) == r.response.replace(" ", "")
    assert all(s[1].startswith("response token ") for s in underlined)
    assert all(s[1].startswith("prompt | ") for s in parser.spans if s not in underlined)
    assert len(underlined) == r.n_response_tokens


def test_html_shows_template_tokens_grey_and_outside_the_scale(sm):
    (r,) = normxlogit.score_chats(sm, CHATS[:1])
    template = r.is_template & ~r.special
    assert template.any()
    parser = Spans()
    parser.feed(r._repr_html_())
    grey = [s for s in parser.spans if s[1].startswith("template | ")]
    assert len(grey) == int(template.sum())
    assert all("background" not in s[0] and "#9a9a9a" in s[0] for s in grey)
    # The legend's ends are the largest absolute score of the tokens that are neither.
    scale = color_scale(r.scores[~r.special & ~r.is_template])
    assert f"{scale:.3g} (supports the target)" in r._repr_html_()
    # Top tokens leave the template's tokens out unless asked for.
    assert "template" not in {r.segments[t.position] for t in r.top_tokens(50)}
    assert "template" in {r.segments[t.position] for t in r.top_tokens(50, include_template=True)}


def test_document_fields_are_the_documents_tables_columns(sm):
    (r,) = normxlogit.score_responses(sm, PROMPTS[1], ANSWERS[1])
    assert tuple(r.document()) == DOCUMENT_COLUMNS + RESPONSE_DOCUMENT_COLUMNS
    assert r.rows.schema.equals(normxlogit.token_schema(), check_metadata=False)
