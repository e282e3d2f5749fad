"""The per-record error."""

from __future__ import annotations

import pickle

from normxlogit.errors import RecordError


def test_a_record_error_pickles_with_its_reason():
    err = pickle.loads(pickle.dumps(RecordError("no_tokens", "the text produced no tokens")))
    assert isinstance(err, RecordError) and (err.reason, str(err)) == (
        "no_tokens",
        "the text produced no tokens",
    )
