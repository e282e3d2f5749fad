"""What a response run attributes (METHOD.md, "Responses of causal LMs"): the kind of response, the
record field it is read from, and how long a generated one may be.

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


@dataclass(frozen=True)
class ResponseSpec:
    """A response run's response.

    Attributes:
        kind: where the response comes from.
        field: the record field holding the response (``RESPONSE``) or the conversation (``CHAT``);
            None for ``GENERATE``.
        max_new_tokens: with ``GENERATE``, the most tokens an answer may have; else None.
    """

    kind: ResponseKind = ResponseKind.RESPONSE
    field: str | None = None
    max_new_tokens: int | None = None

    @property
    def response_field(self) -> str | None:
        """The field holding a plain response (``--response-field``), else None."""
        return self.field if self.kind is ResponseKind.RESPONSE else None

    @property
    def messages_field(self) -> str | None:
        """The field holding a conversation (``--messages-field``), else None."""
        return self.field if self.kind is ResponseKind.CHAT else None
