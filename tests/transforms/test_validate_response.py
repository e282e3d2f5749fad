"""``ValidateResponseBatch``: every record of a batch leaves by one door, per response source."""

from __future__ import annotations

import apache_beam as beam
import pytest

from normxlogit.transforms.records import DeadLetter, SourceRecord
from normxlogit.transforms.sources import MISSING
from normxlogit.transforms.validate import DEAD_LETTER
from normxlogit.transforms.validate_response import ValidateResponseBatch

CHAT = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]


def _record(line: int, text=MISSING, response=None, messages=None) -> SourceRecord:
    return SourceRecord("s", f"line {line}", f"d{line}", text, None, "raw", (), response, messages)


def _route(source: str, batch: list[SourceRecord]) -> tuple[list, dict[str, str], int]:
    """(records to evaluate, dead letter reason by locator, skipped count)."""
    valid, dead = [], {}
    for out in ValidateResponseBatch(source).process(batch):
        if isinstance(out, beam.pvalue.TaggedOutput) and out.tag == DEAD_LETTER:
            assert isinstance(out.value, DeadLetter)
            dead[out.value.locator] = out.value.reason
        else:
            assert not isinstance(out, beam.pvalue.TaggedOutput), out.tag  # skipped ones are only counted
            valid += out
    return valid, dead, len(batch) - len(valid) - len(dead)


@pytest.mark.parametrize("source", ["response", "generate"])
def test_prompts_are_checked_as_texts_and_responses_for_surrogates(source):
    batch = [
        _record(1, "Capital of France?", "Paris"),
        _record(2, "   ", "Paris"),
        _record(3, None, "Paris"),
        _record(4, "fine", "bad \ud800"),
        _record(5, "nul \x00 byte", "Paris"),
    ]
    valid, dead, skipped = _route(source, batch)
    assert [r.locator for r in valid] == ["line 1"] and skipped == 1
    assert dead == {"line 3": "null_text", "line 4": "invalid_unicode", "line 5": "nul_bytes"}


def test_chat_records_need_no_prompt_only_clean_messages():
    bad = [{"role": "user", "content": "bad \ud800"}, {"role": "assistant", "content": "ok"}]
    batch = [_record(1, messages=CHAT), _record(2, messages=bad), _record(3, "   ", messages=CHAT)]
    valid, dead, skipped = _route("messages", batch)
    assert [r.locator for r in valid] == ["line 1", "line 3"] and skipped == 0
    assert dead == {"line 2": "invalid_unicode"}
