"""Token budgets and length limits: the defaults and rules that the engine, the handlers and the
command line share, each written once.

No torch here: the command line reads these before it loads anything.
"""

from __future__ import annotations

DEFAULT_BATCH_TOKENS = 8192  # padded tokens per forward pass
LENGTH_CAP = 8192  # the longest input any model is given, whatever its config allows


def length_limit(asked: int | None, model_limit: int) -> int:
    """The token limit texts are cut to: what was asked (``--max-length``), never past the model's
    own limit (``asked`` None: the model's limit)."""
    return min(asked or model_limit, model_limit)


def prompt_room(limit: int, max_new_tokens: int) -> int:
    """Tokens left for a prompt when the model's answer, up to ``max_new_tokens``, must fit with it
    within ``limit`` tokens: the answer's room comes out of the prompt's. Below 1: no room left."""
    return limit - max_new_tokens
