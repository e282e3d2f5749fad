"""What a response run attributes (METHOD.md, "Responses of causal LMs"): the kind of response, the
record field it is read from, how long a generated one may be, and the contrastive foil of each step.

One vocabulary for ``annotate`` and ``evaluate``, parsed once from the command line and passed down
typed. No torch here: the command line builds a ``ResponseSpec`` before it loads anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class ResponseKind(Enum):
    """Where a record's response comes from; the value is what ``annotate``'s manifest writes as the
    target mode.

    - ``RESPONSE``: the record's text is the prompt and a field holds its response (a string);
    - ``CHAT``: a field holds an OpenAI-style conversation whose last assistant message is the response;
    - ``GENERATE``: the model answers the record's text itself (greedy).
    """

    RESPONSE = "response"
    CHAT = "chat"
    GENERATE = "generate"

    @property
    def flag(self) -> str:
        """The command-line flag that asks for this kind."""
        return _FLAGS[self]

    @property
    def source_name(self) -> str:
        """The name ``evaluate``'s manifest (``response_source``) and summary (``source``) write for
        this kind: ``messages`` for a chat, as runs have always written it."""
        return "messages" if self is ResponseKind.CHAT else self.value


_FLAGS = {
    ResponseKind.RESPONSE: "--response-field",
    ResponseKind.CHAT: "--messages-field",
    ResponseKind.GENERATE: "--generate",
}


class ResponseFoil(Enum):
    """A response run's contrastive foil, one per step (METHOD.md's rule: scores become target minus
    foil logits); the value is what ``--foil`` takes and the manifest writes.

    - ``TOP``: the model's own most likely token at step t other than y_t (the second most likely
      where y_t is the most likely), read from the step's full-vocabulary pass.
    """

    TOP = "top"


@dataclass(frozen=True)
class SystemPromptChoice:
    """What a chat run asks of the system message the chat template writes (``chat.py`` applies it).

    Attributes:
        text: ``--system-prompt``: a system message put first in every chat that has none (a chat
            with its own system message keeps it); None: the chats as they are.
        drop_default: ``--no-default-system-prompt``: set the template's own variable that stops it
            writing its default system prompt (refused where the template has none).
    """

    text: str | None = None
    drop_default: bool = False

    @property
    def asked(self) -> bool:
        """A flag was given: the chats are not rendered as the template does by default."""
        return self.text is not None or self.drop_default


@dataclass(frozen=True)
class ResponseSpec:
    """A response run's response.

    Attributes:
        kind: where the response comes from.
        field: the record field holding the response (``RESPONSE``) or the conversation (``CHAT``,
            and ``GENERATE`` answering chats); None for ``GENERATE`` answering the record's text.
        max_new_tokens: with ``GENERATE``, the most tokens an answer may have; else None.
        foil: each step's contrastive foil (``--foil top``); None: plain target logits.
        system_prompt: for prompts through the chat template, the system message the run asks for
            (``SystemPromptChoice``).
        chat_template: ``--chat-template``: a plain prompt (the record's text) goes through the
            tokenizer's chat template as a user message (its response, if read from a field, as the
            assistant's); always true for chats.
    """

    kind: ResponseKind = ResponseKind.RESPONSE
    field: str | None = None
    max_new_tokens: int | None = None
    foil: ResponseFoil | None = None
    system_prompt: SystemPromptChoice = SystemPromptChoice()
    chat_template: bool = False

    @property
    def reads_messages(self) -> bool:
        """Records hold a conversation in ``field`` (``CHAT``, or ``GENERATE`` answering chats)."""
        return self.field is not None and self.kind in (ResponseKind.CHAT, ResponseKind.GENERATE)

    @property
    def through_template(self) -> bool:
        """The prompt goes through the tokenizer's chat template."""
        return self.reads_messages or self.chat_template

    @property
    def response_field(self) -> str | None:
        """The field holding a plain response (``--response-field``), else None."""
        return self.field if self.kind is ResponseKind.RESPONSE else None

    @property
    def messages_field(self) -> str | None:
        """The field holding a conversation (``--messages-field``), else None."""
        return self.field if self.reads_messages else None
