"""``ValidateResponseBatch``: every record of a batch leaves by one door, per response source."""

from __future__ import annotations

import apache_beam as beam
import pytest

from normxlogit.response_spec import ResponseKind
from normxlogit.transforms.records import DeadLetter, Locator, SourceRecord
from normxlogit.transforms.sources import MISSING
from normxlogit.transforms.validate import DEAD_LETTER, ValidateTextBatch
from normxlogit.transforms.validate_response import ValidateResponseBatch

CHAT = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]


def _record(line: int, text=MISSING, response=None, messages=None) -> SourceRecord:
    return SourceRecord("s", Locator.line(line), f"d{line}", text, None, "raw", (), response, messages)


def _route(kind: ResponseKind, batch: list[SourceRecord]) -> tuple[list, dict[str, str], int]:
    """(records to evaluate, dead letter reason by locator, skipped count)."""
    valid, dead = [], {}
    for out in ValidateResponseBatch(kind).process(batch):
        if isinstance(out, beam.pvalue.TaggedOutput) and out.tag == DEAD_LETTER:
            assert isinstance(out.value, DeadLetter)
            dead[str(out.value.locator)] = out.value.reason
        else:
            assert not isinstance(out, beam.pvalue.TaggedOutput), out.tag  # skipped ones are only counted
            valid += out
    return valid, dead, len(batch) - len(valid) - len(dead)


@pytest.mark.parametrize("kind", [ResponseKind.RESPONSE, ResponseKind.GENERATE])
def test_prompts_are_checked_as_texts_and_responses_for_surrogates(kind):
    batch = [
        _record(1, "Capital of France?", "Paris"),
        _record(2, "   ", "Paris"),
        _record(3, None, "Paris"),
        _record(4, "fine", "bad \ud800"),
        _record(5, "nul \x00 byte", "Paris"),
    ]
    valid, dead, skipped = _route(kind, batch)
    assert [str(r.locator) for r in valid] == ["line 1"] and skipped == 1
    assert dead == {"line 3": "null_text", "line 4": "invalid_unicode", "line 5": "nul_bytes"}


def test_chat_records_need_no_prompt_only_clean_messages():
    bad = [{"role": "user", "content": "bad \ud800"}, {"role": "assistant", "content": "ok"}]
    batch = [_record(1, messages=CHAT), _record(2, messages=bad), _record(3, "   ", messages=CHAT)]
    valid, dead, skipped = _route(ResponseKind.CHAT, batch)
    assert [str(r.locator) for r in valid] == ["line 1", "line 3"] and skipped == 0
    assert dead == {"line 2": "invalid_unicode"}


@pytest.mark.parametrize("validate", [ValidateTextBatch(chat=True), ValidateResponseBatch(ResponseKind.CHAT)])
def test_a_null_or_missing_chat_goes_on_to_the_task_which_names_it(validate):
    """A chat run (``--messages-field``) knows it is one: a record whose messages field is null (read
    as None, like a run without chats) or absent is not checked as a text (``missing_text``); the
    response task dead-letters it as ``null_messages`` or ``missing_messages`` in annotate and
    evaluate alike."""
    batch = [_record(1, messages=None), _record(2, messages=MISSING), _record(3, messages=CHAT)]
    routes = [validate.route(r) for r in batch]
    assert routes == [None, None, None]


def test_a_text_run_still_checks_the_text():
    assert ValidateTextBatch().route(_record(1, text=MISSING)).reason == "missing_text"
    assert ValidateTextBatch().route(_record(2, text=None)).reason == "null_text"
