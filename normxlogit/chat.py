"""Chat records for response attribution: OpenAI-style messages through the tokenizer's own template.

The last message must be the assistant's: it is the response. The conversation before it is rendered
with the chat template and its generation prompt (``add_generation_prompt=True``), as the model saw
it when it answered; the response is the assistant's content followed by the template's end-of-turn
token (what the template writes after an assistant message, up to its last special token, e.g.
``<|im_end|>``), tokenized on its own without special tokens.

Tokens get segment labels: the role of the message whose content they lie in (``system``,
``user``, ``assistant`` for earlier turns, ...), ``template`` for everything the template wrote
(role markers, end-of-turn markers, a default system prompt the user never wrote), ``response``.
Content spans are found exactly by rendering the conversation once with each content replaced by
a unique marker and putting the contents back; a template that changes content (e.g. trims it)
falls back to searching each message's content in order.

A template's default system prompt (``chat_template``) is written into chats without a system
message, or replaced by the run's own, or switched off through the template's variable
(``ChatRendering``); each rendered chat says whether the template wrote one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from transformers import PreTrainedTokenizerBase

from normxlogit.chat_template import (
    AS_WRITTEN,
    MARK,
    MARK_RE,
    ChatRendering,
    ChatTemplateError,
    chat_rendering,
    check_chat_template,
    default_system_text,
    render_template,
)
from normxlogit.errors import RecordError
from normxlogit.flat_tokens import SpecialNames
from normxlogit.heads import HeadAdapter
from normxlogit.responses import (
    NO_TOKENS,
    SEGMENT_CODE,
    EncodedResponse,
    assemble,
    require_causal_lm,
    single,
    tokenize_rows,
)

ROLES = ("system", "developer", "user", "assistant", "tool")
# Re-exported: callers render and check chats through this module.
__all__ = [
    "ROLES",
    "ChatRendering",
    "ChatTemplateError",
    "RenderedChat",
    "chat_rendering",
    "check_chat_template",
    "encode_chat",
    "encode_chat_batch",
    "encode_chat_prompt_batch",
    "render_chat",
    "render_chat_prompt",
    "validate_messages",
]


@dataclass(frozen=True)
class RenderedChat:
    """A conversation rendered for response attribution.

    Attributes:
        prompt: the conversation before the response, generation prompt included.
        spans: (k, 2) character span of each earlier message's content in ``prompt``.
        roles: the role of each of those messages.
        response: the final assistant content followed by the template's end-of-turn text.
        template_system_prompt: the template wrote a default system prompt into ``prompt``.
    """

    prompt: str
    spans: np.ndarray
    roles: tuple[str, ...]
    response: str
    template_system_prompt: bool = False


def validate_messages(messages: object) -> list[dict]:
    """The messages as a list of dicts whose last one is the assistant's response.

    Raises:
        RecordError: ``malformed_messages`` (not a list of {role, content} with text content and a
            known role), ``no_assistant_response`` (empty, or the last message is not the assistant's).
    """
    out = _checked_messages(messages)
    if not out or out[-1]["role"] != "assistant":
        raise RecordError("no_assistant_response", "the last message must be the assistant's response")
    return out


def _checked_messages(messages: object) -> list[dict]:
    """The messages as a list of {role, content} dicts; ``malformed_messages`` otherwise."""
    if not isinstance(messages, Sequence) or isinstance(messages, (str, bytes)):
        raise RecordError(
            "malformed_messages",
            f"messages must be a list of {{role, content}}, not {type(messages).__name__}",
        )
    out = []
    for k, m in enumerate(messages):
        if not isinstance(m, Mapping) or not isinstance(m.get("content"), str) or m.get("role") not in ROLES:
            raise RecordError(
                "malformed_messages",
                f"message {k} must be {{role, content}} with text content and a role in "
                f"{', '.join(ROLES)}: {m!r:.200}",
            )
        out.append(dict(m))
    return out


def render_chat(
    messages: object, tokenizer: PreTrainedTokenizerBase, rendering: ChatRendering = AS_WRITTEN
) -> RenderedChat:
    """Render a conversation's prompt, locate each message's content, and build the response text.

    Args:
        messages: the conversation, its last message the assistant's response.
        tokenizer: a tokenizer with a chat template.
        rendering: the run's system message and template variables (``chat_rendering``).

    Raises:
        RecordError: see ``validate_messages``; ``chat_template_error`` when the template refuses the
            conversation or renders the final assistant turn other than after its generation prompt.
    """
    messages = rendering.with_system(validate_messages(messages))
    variables = rendering.variables
    marked = [dict(m, content=MARK.format(k)) for k, m in enumerate(messages)]
    prompt_skeleton = render_template(tokenizer, marked[:-1], True, variables)
    full_skeleton = render_template(tokenizer, marked, False, variables)
    head = prompt_skeleton + marked[-1]["content"]
    if not full_skeleton.startswith(head):
        raise RecordError(
            "chat_template_error",
            "the chat template does not render the final assistant turn right after its generation prompt",
        )
    response = messages[-1]["content"] + _end_of_turn(full_skeleton[len(head) :], tokenizer)
    return _filled_history(tokenizer, messages[:-1], marked[:-1], prompt_skeleton, variables, response)


def render_chat_prompt(
    messages: object, tokenizer: PreTrainedTokenizerBase, rendering: ChatRendering = AS_WRITTEN
) -> RenderedChat:
    """The conversation for the model to answer: rendered with the template's generation prompt,
    without its last message where that is the assistant's (the answer to be generated instead);
    ``response`` is empty.

    Raises:
        RecordError: ``malformed_messages``; ``empty_prompt`` (no message before the last assistant
            message); ``chat_template_error`` (the template refuses the conversation).
    """
    messages = _checked_messages(messages)
    if messages and messages[-1]["role"] == "assistant":
        messages = messages[:-1]
    if not messages:
        raise RecordError("empty_prompt", "the conversation has no message before its last assistant message")
    history = rendering.with_system(messages)
    variables = rendering.variables
    marked = [dict(m, content=MARK.format(k)) for k, m in enumerate(history)]
    skeleton = render_template(tokenizer, marked, True, variables)
    return _filled_history(tokenizer, history, marked, skeleton, variables, "")


def _filled_history(
    tokenizer: PreTrainedTokenizerBase,
    history: list[dict],
    marked: list[dict],
    skeleton: str,
    variables: tuple[tuple[str, object], ...],
    response: str,
) -> RenderedChat:
    """The ``RenderedChat`` of ``history`` (rendered with its generation prompt) given its marked
    rendering ``skeleton``: content spans, roles and whether the template wrote a default system prompt."""
    prompt = render_template(tokenizer, history, True, variables)
    spans = _filled_spans(skeleton, history, prompt)
    if spans is None:
        spans = _searched_spans(prompt, history)
    injected = default_system_text(tokenizer, marked, skeleton, variables) is not None
    return RenderedChat(prompt, spans, tuple(m["role"] for m in history), response, injected)


def _filled_spans(skeleton: str, messages: list[dict], prompt: str) -> np.ndarray | None:
    """Content spans from the marked rendering, or None if the real rendering is not the skeleton
    with the contents put back (a template that transforms content)."""
    pieces = MARK_RE.split(skeleton)  # text, k, text, k, ..., text
    order = [int(k) for k in pieces[1::2]]
    if order != list(range(len(messages))):
        return None
    rebuilt, spans = [pieces[0]], []
    pos = len(pieces[0])
    for k, tail in zip(order, pieces[2::2]):
        content = messages[k]["content"]
        spans.append((pos, pos + len(content)))
        rebuilt += [content, tail]
        pos += len(content) + len(tail)
    if "".join(rebuilt) != prompt:
        return None
    return np.asarray(spans, dtype=np.int64).reshape(-1, 2)


def _searched_spans(prompt: str, messages: list[dict]) -> np.ndarray:
    """Content spans by searching each content (or its stripped form) in order."""
    spans, cursor = [], 0
    for k, m in enumerate(messages):
        for content in (m["content"], m["content"].strip()):
            at = prompt.find(content, cursor)
            if at >= 0:
                break
        else:
            raise RecordError(
                "chat_template_error", f"message {k}'s content is not in the rendered conversation"
            )
        spans.append((at, at + len(content)))
        cursor = at + len(content)
    return np.asarray(spans, dtype=np.int64).reshape(-1, 2)


def _end_of_turn(after_content: str, tokenizer: PreTrainedTokenizerBase) -> str:
    """What the template writes after an assistant's content, up to and including its last special
    token (``<|im_end|>\\n`` -> ``<|im_end|>``: the model emits the marker, not the separator)."""
    (row,) = tokenize_rows([after_content], tokenizer, special_tokens=False)
    hits = np.flatnonzero(row.special)
    if len(hits) == 0:
        return after_content.rstrip()
    return after_content[: int(row.offsets[hits[-1], 1])]


def _prompt_segments(offsets: np.ndarray, chat: RenderedChat) -> np.ndarray:
    """(n,) segment codes of prompt tokens: the role whose content a token overlaps, else template."""
    segment = np.full(len(offsets), SEGMENT_CODE["template"], dtype=np.int8)
    for (lo, hi), role in zip(chat.spans.tolist(), chat.roles):
        inside = (offsets[:, 0] < hi) & (offsets[:, 1] > lo)
        segment[inside] = SEGMENT_CODE[role]
    return segment


def encode_chat_batch(
    conversations: Sequence[object],
    tokenizer: PreTrainedTokenizerBase,
    adapter: HeadAdapter,
    *,
    max_length: int,
    rendering: ChatRendering = AS_WRITTEN,
) -> list[EncodedResponse | RecordError]:
    """Encode chat records: one tokenizer call for the rendered prompts, one for the responses.

    The rendered prompt is tokenized without the tokenizer's own special tokens (the template writes
    any BOS it wants, as ``apply_chat_template(tokenize=True)`` does). Truncation as in
    ``responses.assemble``: the conversation's start first, then the response's end. Each encoded
    chat's ``template_system_prompt`` says whether the template wrote a default system prompt;
    ``rendering`` (``chat_rendering``) adds the run's system message or template variables.

    Returns:
        One entry per conversation: its ``EncodedResponse`` or the ``RecordError`` (not raised).

    Raises:
        ChatTemplateError: the tokenizer has no chat template.
        UnsupportedModelError: the adapter is not a causal LM's.
    """
    require_causal_lm(adapter)
    check_chat_template(tokenizer)
    return _encode_rendered(
        [_rendered(render_chat, messages, tokenizer, rendering) for messages in conversations],
        tokenizer,
        max_length,
        with_response=True,
    )


def encode_chat_prompt_batch(
    conversations: Sequence[object],
    tokenizer: PreTrainedTokenizerBase,
    adapter: HeadAdapter,
    *,
    max_length: int,
    rendering: ChatRendering = AS_WRITTEN,
) -> list[EncodedResponse | RecordError]:
    """Conversations to generate answers to (``render_chat_prompt``), tokenized as
    ``encode_chat_batch`` tokenizes a chat's prompt and cut from their start to ``max_length``.

    Pass ``max_length`` minus the tokens to generate, then ``generated.generate_responses`` and
    ``generated.append_generated``, as for plain prompts (``generated.encode_prompt_batch``).

    Returns:
        One entry per conversation: an ``EncodedResponse`` with no response tokens (segments and
        ``template_system_prompt`` as in ``encode_chat_batch``), or the ``RecordError``.

    Raises:
        ChatTemplateError: the tokenizer has no chat template.
        UnsupportedModelError: the adapter is not a causal LM's.
    """
    require_causal_lm(adapter)
    check_chat_template(tokenizer)
    return _encode_rendered(
        [_rendered(render_chat_prompt, messages, tokenizer, rendering) for messages in conversations],
        tokenizer,
        max_length,
        with_response=False,
    )


def _rendered(render, messages: object, tokenizer, rendering: ChatRendering) -> RenderedChat | RecordError:
    """``render(messages, tokenizer, rendering)``, or the ``RecordError`` it raised."""
    try:
        return render(messages, tokenizer, rendering)
    except RecordError as err:
        return err


def _encode_rendered(
    rendered: list[RenderedChat | RecordError],
    tokenizer: PreTrainedTokenizerBase,
    max_length: int,
    with_response: bool,
) -> list[EncodedResponse | RecordError]:
    """Tokenize rendered chats in one call for the prompts (and one for the responses, or none when
    the response is to be generated: ``min_response=0``) and assemble each; errors carried."""
    chats = [c for c in rendered if isinstance(c, RenderedChat)]
    prompts = iter(tokenize_rows([c.prompt for c in chats], tokenizer, special_tokens=False))
    if with_response:
        responses = iter(tokenize_rows([c.response for c in chats], tokenizer, special_tokens=False))
    names = SpecialNames(tokenizer)
    out: list[EncodedResponse | RecordError] = []
    for chat in rendered:
        if isinstance(chat, RecordError):
            out.append(chat)
            continue
        prompt = next(prompts)
        response = (chat.response, next(responses)) if with_response else ("", NO_TOKENS)
        try:
            encoded = assemble(
                chat.prompt,
                prompt,
                _prompt_segments(prompt.offsets, chat),
                *response,
                max_length=max_length,
                tokenizer=tokenizer,
                names=names,
                min_response=1 if with_response else 0,
            )
        except RecordError as err:
            out.append(err)
            continue
        encoded.template_system_prompt = chat.template_system_prompt
        out.append(encoded)
    return out


def encode_chat(
    messages: object,
    tokenizer: PreTrainedTokenizerBase,
    adapter: HeadAdapter,
    *,
    max_length: int,
    rendering: ChatRendering = AS_WRITTEN,
) -> EncodedResponse:
    """``encode_chat_batch`` for one conversation; raises its ``RecordError``."""
    return single(
        encode_chat_batch([messages], tokenizer, adapter, max_length=max_length, rendering=rendering)
    )
