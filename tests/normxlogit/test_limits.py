"""Token budgets and length limits, each rule written once (``normxlogit.limits``)."""

from __future__ import annotations

import subprocess
import sys

from normxlogit.limits import length_limit, prompt_room


def test_length_limit_is_what_was_asked_never_past_the_model():
    assert length_limit(None, 512) == 512
    assert length_limit(64, 512) == 64
    assert length_limit(4096, 512) == 512


def test_prompt_room_is_what_the_answer_leaves():
    assert prompt_room(128, 20) == 108
    assert prompt_room(128, 127) == 1
    assert prompt_room(128, 128) < 1 and prompt_room(8, 20) < 1  # no room: refused before a run


def test_limits_import_without_torch():
    """The command line reads the defaults before loading anything."""
    code = "import sys, normxlogit.limits; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
