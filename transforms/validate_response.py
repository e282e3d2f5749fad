"""Checks on a prompt/response record before it reaches the model (``evaluate`` in response mode).

Like ``ValidateTextBatch``, every record leaves by one door: main output, records to evaluate;
``skipped_empty``, an empty or whitespace-only prompt; ``dead_letter``, a prompt that cannot be
tokenized (``text_problem``'s reasons) or a response or chat message text with lone surrogates
(``invalid_unicode``). Chat records (``messages``) need no prompt field. What only the model side
can judge (a response that is missing, null or not text, a malformed chat, no assistant turn) is the
response task's ``RecordError`` (``normxlogit.tasks``: ``null_response``, ``malformed_messages``,
...), dead-lettered by the handler.
"""

from __future__ import annotations

from collections.abc import Iterator

from normxlogit.response_spec import ResponseKind
from normxlogit.transforms.records import DeadLetter, SourceRecord, has_surrogates
from normxlogit.transforms.validate import ValidateTextBatch, text_problem

INVALID_UNICODE = "invalid_unicode"

_SURROGATE_MESSAGE = (
    "the {} holds a lone surrogate (e.g. a JSON \\ud800 escape), which is not a Unicode character "
    "and cannot be written as UTF-8"
)


def _strings(value: object) -> Iterator[str]:
    """Every string inside a JSON-like value (a chat's roles and contents)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _strings(v)


def unreadable_pair(record: SourceRecord, kind: ResponseKind) -> tuple[str, str] | None:
    """(reason, message) if a record's prompt, response or chat cannot reach the tokenizer, else None."""
    if kind is ResponseKind.CHAT:
        if any(has_surrogates(s) for s in _strings(record.messages)):
            return INVALID_UNICODE, _SURROGATE_MESSAGE.format("chat")
        return None
    problem = text_problem(record.text)
    if problem is None and kind is ResponseKind.RESPONSE and isinstance(record.response, str):
        if has_surrogates(record.response):
            return INVALID_UNICODE, _SURROGATE_MESSAGE.format("response")
    return problem


class ValidateResponseBatch(ValidateTextBatch):
    """``ValidateTextBatch`` for prompt/response records: each record of a batch to evaluation,
    ``skipped_empty`` or ``dead_letter``, the prompt checked as ``ValidateTextBatch`` checks a text (chat
    records, which have no prompt field, only their messages) and the response or chat by
    ``unreadable_pair``.

    Args:
        kind: where each record's response comes from.
    """

    def __init__(self, kind: ResponseKind) -> None:
        super().__init__(chat=kind is ResponseKind.CHAT)
        self._kind = kind

    def route(self, record: SourceRecord) -> DeadLetter | str | None:
        if self._kind is not ResponseKind.CHAT:
            way = super().route(record)
            if way is not None:
                return way
        problem = unreadable_pair(record, self._kind)
        if problem is not None:
            self._dead.inc()
            return DeadLetter.of(record, *problem)
        return None
