"""Generation through the chat template (``BatchEngine.generate_chats``): the model answers a
conversation without its last assistant message, exactly as ``apply_chat_template`` and
``model.generate`` would, on SmolLM2-135M-Instruct's real template; generation is reported apart from
scoring (``GenerationDone``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from normxlogit.chat import encode_chat_prompt_batch, render_chat_prompt
from normxlogit.engine import BatchEngine, BucketDone, GenerationDone
from normxlogit.errors import RecordError
from normxlogit.responses import SEGMENT_CODE

NEW = 6
ANSWERED = [
    {"role": "user", "content": "Who wrote Romeo and Juliet?"},
    {"role": "assistant", "content": "Charles Dickens."},
]
OPEN = [{"role": "user", "content": "What is the capital of France?"}]


def reference(sm, messages: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    """(prompt ids, greedy answer ids up to the first EOS) from transformers alone."""
    prompt = sm.tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt")
    prompt = prompt["input_ids"] if not torch.is_tensor(prompt) else prompt
    with torch.inference_mode():
        out = sm.model.generate(
            input_ids=prompt, attention_mask=torch.ones_like(prompt), do_sample=False, max_new_tokens=NEW
        )
    new = out[0, prompt.shape[1] :].numpy()
    eos = np.flatnonzero(new == sm.model.generation_config.eos_token_id)
    return prompt[0].numpy(), new[: eos[0] + 1] if len(eos) else new


@pytest.mark.slow
def test_generate_chats_answers_as_apply_chat_template_and_generate_do(smollm):
    heard: list = []
    out = BatchEngine(smollm).generate_chats([ANSWERED, OPEN], NEW, on_bucket=heard.append)
    for enc, messages in zip(out, (ANSWERED[:1], OPEN)):
        prompt, answer = reference(smollm, messages)
        assert enc.response_start == len(prompt)
        np.testing.assert_array_equal(enc.input_ids, np.r_[prompt, answer])
        assert enc.template_system_prompt is True
        assert "Charles" not in enc.text  # the record's own answer is replaced by the model's
        user = "".join(t for t, s in zip(enc.tokens, enc.segments) if s == "user")
        assert user == messages[0]["content"]
        assert (enc.segment[enc.response_start :] == SEGMENT_CODE["response"]).all()
    generated = [h for h in heard if isinstance(h, GenerationDone)]
    assert generated and not any(isinstance(h, BucketDone) for h in heard)
    assert sum(g.answers for g in generated) == 2
    assert sum(g.new_tokens for g in generated) == sum(e.n_response for e in out)
    assert all(g.seconds > 0 for g in generated)


def test_a_conversation_to_answer_needs_a_message_before_the_answer(smollm):
    with pytest.raises(RecordError) as err:
        render_chat_prompt([{"role": "assistant", "content": "Hi."}], smollm.tokenizer)
    assert err.value.reason == "empty_prompt"
    bad, ok = encode_chat_prompt_batch(["not a chat", OPEN], smollm.tokenizer, smollm.adapter, max_length=64)
    assert isinstance(bad, RecordError) and bad.reason == "malformed_messages"
    assert ok.n_response == 0 and ok.text.endswith("<|im_start|>assistant\n")
