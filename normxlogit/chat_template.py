"""Rendering through a tokenizer's chat template, and the default system prompt a template writes.

Some templates write a system message of their own when a chat has none (SmolLM2's: "You are a
helpful AI assistant named SmolLM, trained by Hugging Face", about 30 tokens with its markers).
Whether a rendering holds one is found by comparison, not by knowing the template: the chat's marked
rendering (each content replaced by a unique marker) is compared with the same chat rendered after a
marked system message. The template injected a default system prompt when the text before the
chat's first message is the system message's wrapper (the text the template writes before and after
a system message's content) around a non-blank content nobody wrote. A run can put its own system
message first (``SystemPromptChoice.text``) or switch the default off through the template's own
variable (``SYSTEM_PROMPT_SWITCHES``), which is kept only if the default is then gone
(``chat_rendering``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import jinja2
import jinja2.meta
from transformers import PreTrainedTokenizerBase

from normxlogit.errors import RecordError
from normxlogit.heads import UnsupportedModelError
from normxlogit.response_spec import SystemPromptChoice

# Private-use characters: no template or tokenizer gives them meaning, and trimming leaves them.
MARK = "\ue000{}\ue001"
MARK_RE = re.compile("\ue000(\\d+)\ue001")
# Template variables that stop a template writing its default system prompt, with the value that
# does (Llama 2's templates read ``use_default_system_prompt``). One is used only where the template
# reads it, and only if the rendering then holds no default system prompt.
SYSTEM_PROMPT_SWITCHES: tuple[tuple[str, object], ...] = (("use_default_system_prompt", False),)
PROBE = ({"role": "user", "content": "Hi"},)


class ChatTemplateError(UnsupportedModelError):
    """The tokenizer cannot render chats: a problem of the whole run (the model does not support
    chats), not of one record."""


def check_chat_template(tokenizer: PreTrainedTokenizerBase) -> None:
    """Raises ``ChatTemplateError`` when the tokenizer has no chat template."""
    if not getattr(tokenizer, "chat_template", None):
        raise ChatTemplateError(
            f"the tokenizer ({type(tokenizer).__name__}) has no chat template, so chat records cannot "
            "be rendered; use --response-field with a prompt field instead of --messages-field"
        )


@dataclass(frozen=True)
class ChatRendering:
    """How a run renders its chats, resolved once from its ``SystemPromptChoice``
    (``chat_rendering``).

    Attributes:
        system_prompt: a system message put first in each chat that has none; None: no message added.
        variables: (name, value) pairs passed to the template (``SYSTEM_PROMPT_SWITCHES``).
    """

    system_prompt: str | None = None
    variables: tuple[tuple[str, object], ...] = ()

    def with_system(self, messages: list[dict]) -> list[dict]:
        """``messages`` with the run's system message first, unless they start with their own."""
        if self.system_prompt is None or (messages and messages[0]["role"] == "system"):
            return messages
        return [{"role": "system", "content": self.system_prompt}, *messages]


# The chats as the template renders them: no system message added, no variable set.
AS_WRITTEN = ChatRendering()


def render_template(
    tokenizer: PreTrainedTokenizerBase,
    messages: list[dict],
    generation_prompt: bool,
    variables: tuple[tuple[str, object], ...] = (),
) -> str:
    """The conversation as the tokenizer's template writes it (``variables`` passed to the template).

    Raises:
        RecordError: ``chat_template_error``, the template refused the conversation.
    """
    try:
        return tokenizer.apply_chat_template(
            messages, add_generation_prompt=generation_prompt, tokenize=False, **dict(variables)
        )
    except (jinja2.TemplateError, TypeError, ValueError, KeyError, IndexError) as err:
        raise RecordError(
            "chat_template_error", f"the chat template refused the conversation: {err}"
        ) from err


def default_system_text(
    tokenizer: PreTrainedTokenizerBase,
    marked: list[dict],
    skeleton: str,
    variables: tuple[tuple[str, object], ...],
) -> str | None:
    """The default system prompt the template wrote into ``skeleton`` (the marked conversation
    ``marked`` rendered with its generation prompt), or None.

    A chat that starts with its own system message has none. Otherwise the conversation is rendered
    once more after a marked system message: the text before the system marker (A) and between it
    and the chat's first marker (B) are the system message's wrapper. The template injected a prompt
    when the chat's own text before its first marker is A + C + B with C not blank: it wrote C
    where a system message's content goes. A template that refuses system messages injects none.
    """
    if marked and marked[0]["role"] == "system":
        return None
    probe = MARK.format(len(marked))
    try:
        with_system = render_template(
            tokenizer, [{"role": "system", "content": probe}, *marked], True, variables
        )
    except RecordError:
        return None
    if probe not in with_system:
        return None
    before, after = with_system.split(probe, 1)
    first = MARK_RE.search(after)
    after = after[: first.start()] if first else after
    found = MARK_RE.search(skeleton)
    own = skeleton[: found.start()] if found else skeleton
    if len(own) <= len(before) + len(after) or not (own.startswith(before) and own.endswith(after)):
        return None
    text = own[len(before) : len(own) - len(after)]
    return text if text.strip() else None


def template_default_system_prompt(
    tokenizer: PreTrainedTokenizerBase, rendering: ChatRendering = AS_WRITTEN
) -> str | None:
    """The default system prompt the template writes into a chat with no system message (a one-line
    user chat rendered as ``rendering`` asks), or None when it writes none."""
    marked = [dict(m, content=MARK.format(k)) for k, m in enumerate(PROBE)]
    variables = rendering.variables
    try:
        skeleton = render_template(tokenizer, marked, True, variables)
    except RecordError:
        return None
    return default_system_text(tokenizer, marked, skeleton, variables)


def template_reads(tokenizer: PreTrainedTokenizerBase) -> set[str]:
    """The names the chat template reads from its context (empty for a template Jinja cannot parse
    on its own, or a tokenizer with several named templates)."""
    template = getattr(tokenizer, "chat_template", None)
    if not isinstance(template, str):
        return set()
    env = jinja2.Environment(extensions=["jinja2.ext.loopcontrols"])
    try:
        return set(jinja2.meta.find_undeclared_variables(env.parse(template)))
    except jinja2.TemplateError:
        return set()


def chat_rendering(tokenizer: PreTrainedTokenizerBase, choice: SystemPromptChoice) -> ChatRendering:
    """How to render a run's chats for ``choice``, checked against the template once per run.

    ``choice.drop_default`` uses the first ``SYSTEM_PROMPT_SWITCHES`` variable the template reads
    after which a user-only chat renders with no default system prompt; a template that writes no
    default needs none, nor does a run that gives every chat a system message (``choice.text``).

    Raises:
        ChatTemplateError: ``--no-default-system-prompt`` and the template writes a default system
            prompt it has no variable to switch off; ``--system-prompt`` and the template refuses
            system messages.
    """
    check_chat_template(tokenizer)
    rendering = ChatRendering(system_prompt=choice.text)
    if choice.text is not None:
        try:
            render_template(tokenizer, [{"role": "system", "content": choice.text}, *PROBE], True)
        except RecordError as err:
            raise ChatTemplateError(f"--system-prompt: {err}") from err
    if not choice.drop_default or choice.text is not None:  # with a system message, no default
        return rendering
    default = template_default_system_prompt(tokenizer)
    if default is None:
        return rendering
    reads = template_reads(tokenizer)
    for name, value in SYSTEM_PROMPT_SWITCHES:
        switched = ChatRendering(choice.text, ((name, value),))
        if name in reads and template_default_system_prompt(tokenizer, switched) is None:
            return switched
    names = ", ".join(name for name, _ in SYSTEM_PROMPT_SWITCHES)
    raise ChatTemplateError(
        f"--no-default-system-prompt: this chat template writes a default system prompt "
        f"({default.strip()[:60]!r}) and reads no variable that stops it (known: {names}); use "
        "--system-prompt TEXT to give chats your own system message instead"
    )
