"""``ResponseSpec``: one vocabulary of response kinds for annotate and evaluate, torch-free."""

from __future__ import annotations

import subprocess
import sys

import pytest

from normxlogit.response_spec import ResponseKind, ResponseSpec


def test_kinds_are_the_target_modes_annotate_writes():
    assert [k.value for k in ResponseKind] == ["response", "chat", "generate"]


@pytest.mark.parametrize(
    ("kind", "flag", "source_name"),
    [
        (ResponseKind.RESPONSE, "--response-field", "response"),
        (ResponseKind.CHAT, "--messages-field", "messages"),
        (ResponseKind.GENERATE, "--generate", "generate"),
    ],
)
def test_each_kind_names_its_flag_and_evaluates_source(kind, flag, source_name):
    assert kind.flag == flag and kind.source_name == source_name


def test_the_field_is_read_as_a_response_or_a_conversation_by_kind():
    plain = ResponseSpec(ResponseKind.RESPONSE, field="answer")
    chat = ResponseSpec(ResponseKind.CHAT, field="messages")
    generated = ResponseSpec(ResponseKind.GENERATE, max_new_tokens=4)
    assert (plain.response_field, plain.messages_field) == ("answer", None)
    assert (chat.response_field, chat.messages_field) == (None, "messages")
    assert (generated.response_field, generated.messages_field, generated.max_new_tokens) == (None, None, 4)


def test_importing_it_loads_no_torch():
    code = "import sys, normxlogit.response_spec; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
