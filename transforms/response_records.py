"""What a response run reads from each record, and the record-level checks before the model step.

A response run attributes a causal LM's answer (METHOD.md, "Responses of causal LMs"): in mode
``response`` the record's text is the prompt and ``SourceRecord.response`` its answer; in ``chat``
``SourceRecord.messages`` is an OpenAI-style conversation whose last assistant message is the answer;
in ``generate`` the model answers the text itself. Problems the encoders find (an empty response,
malformed messages, no final assistant message) come back from the engine as ``RecordError`` values;
this module catches what must not reach the tokenizer at all.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from normxlogit.encoding import RecordError
from normxlogit.transforms.records import SourceRecord, has_surrogates
from normxlogit.transforms.sources import MISSING

RESPONSE = "response"
CHAT = "chat"
GENERATE = "generate"
RESPONSE_MODES = (RESPONSE, CHAT, GENERATE)

_UNICODE = (
    "holds a lone surrogate (e.g. a JSON \\ud800 escape), which is not a Unicode character and "
    "cannot be written as UTF-8; it is shown escaped here"
)


def response_problem(record: SourceRecord, mode: str) -> RecordError | None:
    """Why a record's response (mode ``response``) or messages (mode ``chat``) cannot be encoded.

    Returns:
        None, or a ``RecordError``: ``missing_response``, ``null_response``, ``non_string_response``,
        ``missing_messages``, ``null_messages``, ``nul_bytes``, ``invalid_unicode``.
    """
    if mode == RESPONSE:
        return _text_problem(record.response, "response")
    if mode == CHAT:
        return _messages_problem(record.messages)
    return None


def _text_problem(value: object, what: str) -> RecordError | None:
    if value is MISSING:
        return RecordError(f"missing_{what}", f"the record has no {what} field")
    if value is None:
        return RecordError(f"null_{what}", f"the {what} field is null")
    if not isinstance(value, str):
        return RecordError(
            f"non_string_{what}", f"the {what} field holds a {type(value).__name__}, not a string"
        )
    if "\x00" in value:
        return RecordError("nul_bytes", f"the {what} contains NUL (\\x00) bytes")
    if has_surrogates(value):
        return RecordError("invalid_unicode", f"the {what} {_UNICODE}")
    return None


def _messages_problem(messages: object) -> RecordError | None:
    if messages is MISSING:
        return RecordError("missing_messages", "the record has no messages field")
    if messages is None:
        return RecordError("null_messages", "the messages field is null")
    if not isinstance(messages, Sequence) or isinstance(messages, (str, bytes)):
        return None  # the chat encoder's malformed_messages
    for k, m in enumerate(messages):
        content = m.get("content") if isinstance(m, Mapping) else None
        if isinstance(content, str) and ("\x00" in content or has_surrogates(content)):
            problem = _text_problem(content, f"content of message {k}")
            return RecordError(problem.reason, str(problem))
    return None
