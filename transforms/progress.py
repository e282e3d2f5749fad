"""Progress lines on stderr while a handler scores (``annotate``) or evaluates (``evaluate``).

A ``Progress`` is one run's counter in one process; each RunInference batch counts into it through
a ``BatchProgress``: the batch engine's buckets as their forward passes succeed (``on_bucket``), so
the first line comes after the first bucket even when a run is smaller than one batch, and the
rest of the batch (records that were not scored, or every record when the engine is out of reach)
when the batch ends, so nothing counts twice.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import uuid
import weakref
from collections.abc import Sequence

from normxlogit.engine import BucketDone, GenerationDone, OnBucket
from normxlogit.transforms.records import SourceRecord


def line_bytes(record: SourceRecord) -> int:
    """The bytes of the input line a record was read from, its newline included."""
    return len(record.raw.encode("utf-8", "surrogatepass")) + 1


class Progress:
    """Progress lines on stderr: the first once the first documents are done, then one every
    ``every_s`` seconds.

    One counter per run and process: the handler's copies (one per thread, unpickled) share it
    through ``shared_progress``, so a line counts the whole process. A worker process other than
    the one that built the pipeline says which it is, since each prints its own part. Rates are
    over the time since the process's first batch began, so model loading does not count. With
    ``input_bytes`` (the input files' size, known when every file is uncompressed text or JSON
    Lines: a record is one line), the line gives the share of it done (the records' lines),
    and, in the launching process, an ETA from that share.

    Args:
        input_bytes: the input files' total size, or None (no share, no ETA).
        verb: what was done to the documents, as the line says it (``scored``, ``evaluated``).
        every_s: seconds between lines.
        key: the run's id (shared by the copies); None: a new one.
        launcher_pid: the process that built the pipeline; None: this one.
    """

    def __init__(
        self,
        input_bytes: int | None = None,
        verb: str = "scored",
        every_s: float = 5.0,
        key: str | None = None,
        launcher_pid: int | None = None,
    ):
        self.input_bytes = input_bytes
        self.verb = verb
        self.every_s = every_s
        self.key = key or uuid.uuid4().hex
        self.launcher_pid = launcher_pid or os.getpid()
        self.docs = self.tokens = self.done_bytes = 0
        self.generated_tokens, self.generation_s = 0, 0.0
        self.started: float | None = None
        self.last: float | None = None
        self._lock = threading.Lock()
        _PROGRESS.setdefault(self.key, self)

    def __reduce__(self):
        return (shared_progress, (self.key, self.input_bytes, self.verb, self.every_s, self.launcher_pid))

    def start(self) -> None:
        """Start the clock when the first batch begins."""
        with self._lock:
            if self.started is None:
                self.started = time.monotonic()

    def batch(self, records: Sequence[SourceRecord]) -> BatchProgress:
        """The counter of one RunInference batch of ``records``."""
        return BatchProgress(self, records)

    def add(self, docs: int, tokens: int, done_bytes: int = 0) -> None:
        """Count ``docs`` documents of ``tokens`` tokens (``done_bytes`` input bytes) and print a
        line when one is due."""
        with self._lock:
            self.docs += docs
            self.tokens += tokens
            self.done_bytes += done_bytes
            now = time.monotonic()
            if self.last is not None and now - self.last < self.every_s:
                return
            self.last = now
            line = self.line(now)
        print(line, file=sys.stderr, flush=True)

    def add_generation(self, done: GenerationDone) -> None:
        """Count a bucket of generated answers: its new tokens and time, apart from scoring (no
        line: the documents count once scored)."""
        with self._lock:
            self.generated_tokens += done.new_tokens
            self.generation_s += done.seconds

    def line(self, now: float) -> str:
        """The progress line at time ``now``; with generated answers, the generation's time and
        rate apart from the rest (scoring)."""
        elapsed = max(now - (self.started or now), 1e-3)
        here = os.getpid()
        who = "" if here == self.launcher_pid else f"worker {here}: "
        if self.generation_s > 0:
            rest = max(elapsed - self.generation_s, 1e-3)
            text = (
                f"normxlogit: {who}{self.docs:,} docs, {self.tokens:,} tokens in {elapsed:,.1f} s: "
                f"{self.generated_tokens:,} tokens generated in {self.generation_s:,.1f} s "
                f"({self.generated_tokens / self.generation_s:,.1f} tokens/s), {self.verb} in "
                f"{rest:,.1f} s ({self.tokens / rest:,.0f} tokens/s)"
            )
        else:
            text = (
                f"normxlogit: {who}{self.docs:,} docs, {self.tokens:,} tokens {self.verb} in "
                f"{elapsed:,.1f} s ({self.tokens / elapsed:,.0f} tokens/s)"
            )
        if self.input_bytes:
            share = min(self.done_bytes / self.input_bytes, 1.0)
            text += f"; {share:.0%} of the input bytes"
            if not who and 0 < share < 1:
                text += f", about {elapsed * (1 - share) / share:,.0f} s left"
        return text


class BatchProgress:
    """One RunInference batch's part of a ``Progress``: its buckets counted as the engine finishes
    them (``on_bucket``), the rest when the batch ends (``finish``), nothing twice.

    Used by the one thread that runs the batch (the engine calls ``on_bucket`` in it).
    """

    def __init__(self, progress: Progress, records: Sequence[SourceRecord]):
        self.progress = progress
        self.records = records
        self.docs = self.tokens = self.done_bytes = 0

    def on_bucket(self, engine_records: Sequence[SourceRecord]) -> OnBucket:
        """The engine's ``on_bucket`` callback for a call given ``engine_records`` (in its order)."""

        def count(done: BucketDone | GenerationDone) -> None:
            if isinstance(done, GenerationDone):
                self.progress.add_generation(done)
                return
            done_bytes = (
                sum(line_bytes(engine_records[i]) for i in done.index) if self.progress.input_bytes else 0
            )
            self._add(done.docs, done.tokens, done_bytes)

        return count

    def finish(self, docs: int, tokens: int) -> None:
        """The batch is done: ``docs`` documents of ``tokens`` tokens in all; what its buckets did not
        count (every input line of the batch is done now) counts here."""
        total_bytes = sum(line_bytes(r) for r in self.records) if self.progress.input_bytes else 0
        missing = (docs - self.docs, tokens - self.tokens, total_bytes - self.done_bytes)
        if any(missing):
            self._add(*missing)

    def _add(self, docs: int, tokens: int, done_bytes: int) -> None:
        self.docs += docs
        self.tokens += tokens
        self.done_bytes += done_bytes
        self.progress.add(docs, tokens, done_bytes)


# The progress counter of each run in this process, by key; the handler's copies hold them.
_PROGRESS: weakref.WeakValueDictionary[str, Progress] = weakref.WeakValueDictionary()
_PROGRESS_LOCK = threading.Lock()


def shared_progress(
    key: str, input_bytes: int | None, verb: str, every_s: float, launcher_pid: int
) -> Progress:
    """This process's progress counter of run ``key`` (unpickling a ``Progress`` lands here)."""
    with _PROGRESS_LOCK:
        progress = _PROGRESS.get(key)
        return progress or Progress(input_bytes, verb, every_s, key, launcher_pid)
