"""Progress lines: counted per bucket of the batch engine, printed on a (fake) clock, never twice.

The clock is a fake one; a test that needs an order of events (a line before the next bucket's
forward pass) waits on an event, never on a duration.
"""

from __future__ import annotations

import os
import pickle
import re
import sys
import threading
from types import SimpleNamespace

import pytest

from normxlogit import engine as engine_module
from normxlogit.engine import BatchEngine, BucketDone, EngineOptions
from normxlogit.loading import load_model
from normxlogit.transforms import progress as progress_module
from normxlogit.transforms.model_handler import ModelSpec, NormXLogitModelHandler, ScoringOptions
from normxlogit.transforms.progress import Progress, line_bytes
from normxlogit.transforms.records import Locator, SourceRecord

LINE = re.compile(r"normxlogit: (?P<docs>[\d,]+) docs, (?P<tokens>[\d,]+) tokens scored in .*")
# Equal token lengths (8 with [CLS] and [SEP]): --batch-tokens 32 makes buckets of 4.
TEXTS = [f"review number {i} was quite good" for i in range(12)]


class Clock:
    """``time.monotonic`` that stands still (``now``), or moves ``step`` seconds at each call."""

    def __init__(self, step: float = 0.0):
        self.now = 100.0
        self.step = step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


class Lines:
    """sys.stderr that keeps each line and says when the first has come."""

    def __init__(self):
        self.text = ""
        self.first = threading.Event()

    def write(self, text: str) -> int:
        self.text += text
        if "\n" in self.text:
            self.first.set()
        return len(text)

    def flush(self) -> None:
        pass

    def progress(self) -> list[re.Match]:
        return [LINE.fullmatch(line) for line in self.text.splitlines()]


def records(*lines: str) -> list[SourceRecord]:
    return [
        SourceRecord("f.txt", Locator.line(i), f"f.txt#L{i}", line, raw=line) for i, line in enumerate(lines)
    ]


def use_clock(monkeypatch, clock: Clock) -> Clock:
    """``clock`` as the progress module's ``time.monotonic`` (nothing else's)."""
    monkeypatch.setattr(progress_module, "time", SimpleNamespace(monotonic=clock))
    return clock


@pytest.fixture
def clock(monkeypatch) -> Clock:
    return use_clock(monkeypatch, Clock())


def test_first_line_after_the_first_documents_then_every_5_s(clock, capsys):
    progress = Progress(input_bytes=40)  # ten 3-byte lines and their newlines
    clock.now = 160.0  # model loading before the first batch does not count
    progress.start()
    clock.now = 162.0
    progress.add(2, 100, 8)
    assert capsys.readouterr().err == (
        "normxlogit: 2 docs, 100 tokens scored in 2.0 s (50 tokens/s); 20% of the input bytes, "
        "about 8 s left\n"
    )
    clock.now = 166.9
    progress.add(2, 100, 8)
    assert capsys.readouterr().err == ""  # under 5 s since the last line
    clock.now = 167.0
    progress.add(4, 200, 16)
    assert capsys.readouterr().err == (
        "normxlogit: 8 docs, 400 tokens scored in 7.0 s (57 tokens/s); 80% of the input bytes, "
        "about 2 s left\n"
    )


def test_without_input_size_no_share_and_evaluate_says_evaluated(clock, capsys):
    progress = Progress(input_bytes=None, verb="evaluated")
    progress.start()
    clock.now += 4
    progress.add(3, 30, 0)
    assert capsys.readouterr().err == "normxlogit: 3 docs, 30 tokens evaluated in 4.0 s (8 tokens/s)\n"


def test_copies_in_one_process_share_one_counter(clock, capsys):
    progress = Progress(input_bytes=8, verb="evaluated")
    copies = [pickle.loads(pickle.dumps(progress)) for _ in range(2)]
    assert all(c is progress for c in copies)
    copies[0].start()
    copies[0].batch(records("abc")).finish(1, 10)
    copies[1].batch(records("abc")).finish(1, 10)  # a second thread's copy: counted, line not due yet
    assert progress.docs == 2 and progress.tokens == 20 and progress.done_bytes == 8
    assert capsys.readouterr().err.count("\n") == 1


def test_a_worker_process_names_itself_and_gives_no_eta(clock, capsys):
    progress = Progress(input_bytes=8, launcher_pid=os.getpid() + 1)
    progress.start()
    clock.now += 1
    progress.add(1, 10, 4)
    assert capsys.readouterr().err == (
        f"normxlogit: worker {os.getpid()}: 1 docs, 10 tokens scored in 1.0 s (10 tokens/s); "
        "50% of the input bytes\n"
    )


def test_a_batch_counts_its_buckets_then_only_what_they_did_not(clock, capsys):
    """A bucket prints the first line mid-batch; the end adds the records no bucket scored (their
    bytes only), so the totals equal the batch's, once."""
    clock.step = 10  # every count is 10 s after the last: each prints a line
    batch = records("abc", "bad", "def")
    progress = Progress(input_bytes=sum(line_bytes(r) for r in batch))
    progress.start()
    counter = progress.batch(batch)
    on_bucket = counter.on_bucket([batch[0], batch[2]])  # "bad" never reached the engine
    on_bucket(BucketDone((1,), 7))
    assert capsys.readouterr().err.startswith("normxlogit: 1 docs, 7 tokens scored in 10.0 s")
    on_bucket(BucketDone((0,), 5))
    counter.finish(2, 12)
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("normxlogit: 2 docs, 12 tokens scored in 20.0 s") and "67%" in err[0]
    assert err[1].startswith("normxlogit: 2 docs, 12 tokens scored in 30.0 s") and "100%" in err[1]
    assert (progress.docs, progress.tokens, progress.done_bytes) == (2, 12, 12)


BATCH = records(*TEXTS)
SMALL_BUCKETS = ScoringOptions(
    engine=EngineOptions(batch_tokens=32), input_bytes=sum(line_bytes(r) for r in BATCH)
)


@pytest.fixture(scope="module")
def engine(tiny_classifier) -> BatchEngine:
    """A batch engine on the tiny classifier that makes buckets of 4 of ``TEXTS``."""
    return BatchEngine(load_model(str(tiny_classifier)), SMALL_BUCKETS.engine)


@pytest.fixture
def handler(tiny_classifier) -> NormXLogitModelHandler:
    """A fresh annotate handler (a run of its own: its progress counts from zero)."""
    return NormXLogitModelHandler(ModelSpec(path=str(tiny_classifier)), SMALL_BUCKETS)


def test_a_line_comes_after_the_first_bucket_before_the_batch_ends(handler, engine, monkeypatch):
    """One RunInference batch of 12 records in 3 buckets: the second bucket's forward pass waits
    until a line has been printed, which counting per batch would only do after the third."""
    use_clock(monkeypatch, Clock(step=10))  # every count prints a line
    lines = Lines()
    monkeypatch.setattr(sys, "stderr", lines)
    real = engine_module.score_prepared
    lines_before = []  # progress lines printed before each forward pass began

    def waits_for_a_line(model, prepared, layers=()):  # on the model's forward thread
        if len(lines_before) == 1:  # the second bucket
            lines.first.wait(timeout=60)
        lines_before.append(len(lines.progress()))
        return real(model, prepared, layers)

    monkeypatch.setattr(engine_module, "score_prepared", waits_for_a_line)
    (out,) = handler.run_inference(BATCH, engine)

    assert len(lines_before) == 3 and lines_before[1] >= 1
    progress = lines.progress()
    assert all(progress), lines.text
    assert [int(m["docs"]) for m in progress] == [4, 8, 12]  # the end of the batch adds nothing
    assert int(progress[-1]["tokens"]) == out.rows.num_rows == 12 * 8
    assert lines.text.splitlines()[-1].endswith("; 100% of the input bytes")


class SharedEngine:
    """Stands for Beam's proxy to an engine in a shared process: forwards calls, is no BatchEngine."""

    def __init__(self, engine: BatchEngine):
        self._engine = engine

    def __getattr__(self, name: str):
        return getattr(self._engine, name)


def test_through_a_shared_process_the_batch_counts_when_it_ends(handler, engine, monkeypatch):
    use_clock(monkeypatch, Clock(step=10))
    lines = Lines()
    monkeypatch.setattr(sys, "stderr", lines)
    (out,) = handler.run_inference(BATCH, SharedEngine(engine))
    [line] = lines.progress()
    assert int(line["docs"]) == 12 and int(line["tokens"]) == out.rows.num_rows


def test_generation_is_timed_apart_from_scoring(clock, capsys):
    from normxlogit.engine import GenerationDone

    progress = Progress(input_bytes=None)
    progress.start()
    copy = progress.batch([])
    count = copy.on_bucket([])
    count(GenerationDone(answers=2, new_tokens=20, seconds=3.0))
    assert capsys.readouterr().err == ""  # generated answers are not scored documents yet
    clock.now += 4
    progress.add(2, 100, 0)
    assert capsys.readouterr().err == (
        "normxlogit: 2 docs, 100 tokens in 4.0 s: 20 tokens generated in 3.0 s (6.7 tokens/s), "
        "scored in 1.0 s (100 tokens/s)\n"
    )
