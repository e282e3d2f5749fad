"""The tasks: the record problems each checks before the model, the task a run's options pick, and
the rows a task makes of a scored batch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from normxlogit.evaluation import EvaluationOptions
from normxlogit.response_evaluation import ResponseEvaluationOptions
from normxlogit.response_spec import ResponseKind, ResponseSpec
from normxlogit.tasks import MISSING_TARGET, ResponseTask, TextTask, make_task

ABSENT = object()  # the reader's marker of a field a record lacks
CHAT = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]


@dataclass
class Record:
    text: Any = "a prompt"
    target: Any = None
    response: Any = None
    messages: Any = None
    doc_id: str = "d"
    source: str = "s"


def _reason(task, **fields) -> str | None:
    problem = task.problem(Record(**fields))
    return None if problem is None else problem.reason


def test_a_text_task_asks_a_target_only_when_records_name_their_own():
    own = TextTask(ABSENT, targets_from_records=True)
    for blank in (ABSENT, None, "", "  "):
        assert _reason(own, target=blank) == MISSING_TARGET
    assert _reason(own, target="positive") is None and _reason(own, target=0) is None
    assert _reason(TextTask(ABSENT), target=ABSENT) is None


@pytest.mark.parametrize(
    ("response", "reason"),
    [
        (ABSENT, "missing_response"),
        (None, "null_response"),
        (4, "non_string_response"),
        ("nul \x00", "nul_bytes"),
        ("", None),  # the encoder's empty_response
        (" Paris", None),
    ],
)
def test_a_response_task_checks_the_response_field(response, reason):
    task = ResponseTask(ResponseSpec(ResponseKind.RESPONSE, field="answer"), ABSENT)
    assert _reason(task, response=response) == reason


@pytest.mark.parametrize(
    ("messages", "reason"),
    [
        (ABSENT, "missing_messages"),
        (None, "null_messages"),
        ("not a list", None),  # the encoder's malformed_messages
        ([{"role": "user", "content": "nul \x00"}, {"role": "assistant", "content": "x"}], "nul_bytes"),
        (CHAT, None),
    ],
)
def test_a_chat_task_checks_the_conversation(messages, reason):
    task = ResponseTask(ResponseSpec(ResponseKind.CHAT, field="messages"), ABSENT)
    assert _reason(task, messages=messages) == reason


def test_a_generate_task_reads_no_response():
    task = ResponseTask(ResponseSpec(ResponseKind.GENERATE, max_new_tokens=3), ABSENT)
    assert _reason(task, response=ABSENT, messages=None) is None


def test_the_problem_messages_say_which_field():
    task = ResponseTask(ResponseSpec(ResponseKind.RESPONSE, field="answer"), ABSENT)
    assert str(task.problem(Record(response=None))) == "the response field is null"
    assert str(task.problem(Record(response=ABSENT))) == "the record has no response field"
    assert str(task.problem(Record(response=4))) == "the response field holds a int, not a string"


def test_make_task_picks_the_task_the_options_ask_for():
    text = make_task(None, ABSENT, targets_from_records=True, with_layers=True)
    assert text == TextTask(ABSENT, targets_from_records=True, with_layers=True)
    assert text.token_schema().names[-2:] == ["logat_layers", "score_layers"]
    assert "response" not in text.document_schema(("lang",)).names
    spec = ResponseSpec(ResponseKind.CHAT, field="messages")
    chat = make_task(spec, ABSENT, step_scores=True)
    assert chat == ResponseTask(spec, ABSENT, step_scores=True)
    assert chat.token_schema().names[-1] == "step_scores"
    assert chat.document_schema(("lang",)).names[-3:] == [
        "response_logprob",
        "template_system_prompt",
        "lang",
    ]


def test_each_task_evaluates_with_its_own_options():
    ev, resp = EvaluationOptions(seed=3), ResponseEvaluationOptions(seed=4)
    assert make_task(None, ABSENT, evaluation=ev, response_evaluation=resp).evaluation is ev
    spec = ResponseSpec(ResponseKind.GENERATE, max_new_tokens=2)
    assert make_task(spec, ABSENT, evaluation=ev, response_evaluation=resp).evaluation is resp


def test_only_annotate_refuses_nul_bytes_in_a_response_or_a_message():
    """``evaluate`` measures them (``field_problem``), as it always has; ``annotate`` refuses them."""
    plain = ResponseTask(ResponseSpec(ResponseKind.RESPONSE, field="answer"), ABSENT)
    chat = ResponseTask(ResponseSpec(ResponseKind.CHAT, field="messages"), ABSENT)
    nul_chat = [{"role": "user", "content": "nul \x00"}, {"role": "assistant", "content": "x"}]
    assert plain.field_problem(Record(response="nul \x00")) is None
    assert chat.field_problem(Record(messages=nul_chat)) is None
    assert plain.field_problem(Record(response=None)).reason == "null_response"
    assert chat.field_problem(Record(messages=ABSENT)).reason == "missing_messages"
