"""Fixtures for the pipeline's tests of LLM response runs."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from transformers import AutoTokenizer

# A small ChatML-like template (SmolLM2's shape) for the tiny model's BERT tokenizer: [unused1] opens
# a turn, [unused2] ends it.
CHAT_TEMPLATE = (
    "{% for m in messages %}[unused1]{{ m['role'] }}\n{{ m['content'] }}[unused2]\n{% endfor %}"
    "{% if add_generation_prompt %}[unused1]assistant\n{% endif %}"
)


@pytest.fixture(scope="session")
def chat_lm(tiny_causal_lm, tmp_path_factory) -> Path:
    """The tiny random Llama (``tiny_causal_lm``) with a chat template on its tokenizer."""
    folder = tmp_path_factory.mktemp("tiny-chat-lm")
    shutil.copytree(tiny_causal_lm, folder, dirs_exist_ok=True)
    tok = AutoTokenizer.from_pretrained(folder)
    tok.chat_template = CHAT_TEMPLATE
    tok.add_special_tokens({"additional_special_tokens": ["[unused1]", "[unused2]"]})
    tok.save_pretrained(folder)
    return folder
