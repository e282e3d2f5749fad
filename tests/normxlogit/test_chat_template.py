"""Default system prompts of chat templates: found by comparing renderings, switched off through the
template's own variable, replaced by a run's own system message (``normxlogit.chat_template``,
``normxlogit.chat``)."""

from __future__ import annotations

import copy

import pytest

from normxlogit.chat import encode_chat_batch, render_chat
from normxlogit.chat_template import (
    ChatRendering,
    ChatTemplateError,
    chat_rendering,
    template_default_system_prompt,
)
from normxlogit.heads import ADAPTERS
from normxlogit.response_spec import SystemPromptChoice
from normxlogit.responses import SEGMENT_CODE

CAUSAL = next(a for a in ADAPTERS if a.name == "llama-like-causal-lm")
SMOL_DEFAULT = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
CHAT = [
    {"role": "user", "content": "Who wrote Romeo and Juliet?"},
    {"role": "assistant", "content": "Charles Dickens."},
]
TURNS = (
    "{% for m in messages %}<s>{{ m['role'] }}: {{ m['content'] }}</s>\n{% endfor %}"
    "{% if add_generation_prompt %}<s>assistant: {% endif %}"
)
# A default system prompt the template's own variable switches off (Llama 2's templates read it).
SWITCHABLE = (
    "{% set use_default = use_default_system_prompt if use_default_system_prompt is defined else true %}"
    "{% if use_default and messages[0]['role'] != 'system' %}<s>system: Be nice.</s>\n{% endif %}" + TURNS
)
# Llama 3.1's shape: a system block is always written, its fixed header first, content after it.
HEADER_ALWAYS = (
    "<s>system: Cutting Knowledge Date: 2023\n"
    "{% if messages[0]['role'] == 'system' %}{{ messages[0]['content'] }}{% set rest = messages[1:] %}"
    "{% else %}{% set rest = messages %}{% endif %}</s>\n"
    "{% for m in rest %}<s>{{ m['role'] }}: {{ m['content'] }}</s>\n{% endfor %}"
    "{% if add_generation_prompt %}<s>assistant: {% endif %}"
)
# Gemma's shape: no system role at all.
NO_SYSTEM = (
    "{% for m in messages %}{% if m['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
    "{% endif %}<s>{{ m['role'] }}: {{ m['content'] }}</s>\n{% endfor %}"
    "{% if add_generation_prompt %}<s>assistant: {% endif %}"
)


@pytest.fixture(scope="module")
def templated(bpe_pair):
    """``templated(template)``: the BPE tokenizer (no BOS) with ``template`` as its chat template."""

    def make(template: str):
        tok = copy.deepcopy(bpe_pair[1])
        tok.chat_template = template
        return tok

    return make


def test_smollm2_template_writes_its_default_system_prompt(smollm):
    tok = smollm.tokenizer
    assert template_default_system_prompt(tok) == SMOL_DEFAULT
    chat = render_chat(CHAT, tok)
    assert chat.template_system_prompt and SMOL_DEFAULT in chat.prompt
    own = render_chat([{"role": "system", "content": "Be brief."}, *CHAT], tok)
    assert not own.template_system_prompt and SMOL_DEFAULT not in own.prompt


def test_smollm2_default_prompt_tokens_are_template_tokens(smollm):
    (enc,) = encode_chat_batch([CHAT], smollm.tokenizer, smollm.adapter, max_length=256)
    assert enc.template_system_prompt is True
    template = enc.segment == SEGMENT_CODE["template"]
    written = "".join(t for t, m in zip(enc.tokens, template) if m)
    assert SMOL_DEFAULT.replace(" ", "") in written.replace(" ", "")
    user = "".join(t for t, s in zip(enc.tokens, enc.segments) if s == "user")
    assert user == CHAT[0]["content"]


def test_system_prompt_replaces_the_default_on_smollm2(smollm):
    rendering = chat_rendering(smollm.tokenizer, SystemPromptChoice(text="Answer in one word."))
    (enc,) = encode_chat_batch([CHAT], smollm.tokenizer, smollm.adapter, max_length=256, rendering=rendering)
    assert enc.template_system_prompt is False
    assert enc.text.startswith("<|im_start|>system\nAnswer in one word.<|im_end|>\n<|im_start|>user\n")
    assert SMOL_DEFAULT not in enc.text
    system = "".join(t for t, s in zip(enc.tokens, enc.segments) if s == "system")
    assert system == "Answer in one word."  # the run's message is content, not template


def test_a_chat_with_its_own_system_message_keeps_it(smollm):
    rendering = chat_rendering(smollm.tokenizer, SystemPromptChoice(text="Answer in one word."))
    chat = render_chat([{"role": "system", "content": "Be brief."}, *CHAT], smollm.tokenizer, rendering)
    assert "Be brief." in chat.prompt and "Answer in one word." not in chat.prompt


def test_no_default_system_prompt_is_refused_on_smollm2(smollm):
    with pytest.raises(ChatTemplateError) as err:
        chat_rendering(smollm.tokenizer, SystemPromptChoice(drop_default=True))
    message = str(err.value)
    assert "\n" not in message
    assert "--no-default-system-prompt" in message and "use_default_system_prompt" in message
    # With a system message of the run's own, no chat lacks one: nothing to drop, nothing refused.
    both = chat_rendering(smollm.tokenizer, SystemPromptChoice(text="Hi.", drop_default=True))
    assert both == ChatRendering(system_prompt="Hi.")


def test_no_default_system_prompt_sets_the_templates_variable(templated):
    tok = templated(SWITCHABLE)
    assert template_default_system_prompt(tok) == "Be nice."
    assert render_chat(CHAT, tok).template_system_prompt
    rendering = chat_rendering(tok, SystemPromptChoice(drop_default=True))
    assert rendering.variables == (("use_default_system_prompt", False),)
    chat = render_chat(CHAT, tok, rendering)
    assert not chat.template_system_prompt
    assert chat.prompt == "<s>user: Who wrote Romeo and Juliet?</s>\n<s>assistant: "


def test_templates_without_a_default_prompt(templated):
    for template in (TURNS, HEADER_ALWAYS, NO_SYSTEM):
        tok = templated(template)
        assert template_default_system_prompt(tok) is None, template
        assert not render_chat(CHAT, tok).template_system_prompt
        # Nothing to drop: accepted, no variable set.
        assert chat_rendering(tok, SystemPromptChoice(drop_default=True)).variables == ()


def test_system_prompt_refused_where_the_template_has_no_system_role(templated):
    with pytest.raises(ChatTemplateError, match="--system-prompt: .*System role not supported"):
        chat_rendering(templated(NO_SYSTEM), SystemPromptChoice(text="Be brief."))


def test_encoded_plain_responses_carry_no_template_flag(bpe_pair):
    from normxlogit.responses import encode_response_batch

    (enc,) = encode_response_batch(["Q: hi"], [" A: hello"], bpe_pair[0], CAUSAL, max_length=64)
    assert enc.template_system_prompt is None
