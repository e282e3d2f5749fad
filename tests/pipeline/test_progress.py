"""Progress lines while scoring, and Beam's noise kept off stderr unless --verbose.

The clock is a fake one in the unit tests; the end-to-end runs assert what the lines say, never
how long anything took.
"""

from __future__ import annotations

import gzip
import os
import pickle
import re
import subprocess
import sys
from pathlib import Path

import pytest

from normxlogit.pipeline.commands.common import line_input_bytes
from normxlogit.pipeline.options import pipeline_options
from normxlogit.transforms import model_handler
from normxlogit.transforms.model_handler import _Progress
from normxlogit.transforms.records import SourceRecord

REPO = Path(__file__).resolve().parents[2]
LINE = re.compile(
    r"normxlogit: (?P<docs>[\d,]+) docs, (?P<tokens>[\d,]+) tokens scored in [\d.,]+ s \([\d,]+ tokens/s\); "
    r"(?P<share>\d+)% of the input bytes(, about [\d,]+ s left)?"
)


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def records(*lines: str) -> list[SourceRecord]:
    return [SourceRecord("f.txt", f"line {i}", f"f.txt#L{i}", line, raw=line) for i, line in enumerate(lines)]


@pytest.fixture
def clock(monkeypatch) -> Clock:
    c = Clock()
    monkeypatch.setattr(model_handler.time, "monotonic", c)
    return c


def test_first_line_after_the_first_batch_then_every_5_s(clock, capsys):
    progress = _Progress(input_bytes=40)  # ten 3-byte lines and their newlines
    clock.now = 160.0  # model loading before the first batch does not count
    progress.start()
    clock.now = 162.0
    progress.add(2, 100, records("abc", "def"))
    assert capsys.readouterr().err == (
        "normxlogit: 2 docs, 100 tokens scored in 2.0 s (50 tokens/s); 20% of the input bytes, "
        "about 8 s left\n"
    )
    clock.now = 166.9
    progress.add(2, 100, records("abc", "def"))
    assert capsys.readouterr().err == ""  # under 5 s since the last line
    clock.now = 167.0
    progress.add(4, 200, records("abc", "def", "ghi", "jkl"))
    assert capsys.readouterr().err == (
        "normxlogit: 8 docs, 400 tokens scored in 7.0 s (57 tokens/s); 80% of the input bytes, "
        "about 2 s left\n"
    )


def test_without_input_size_no_share(clock, capsys):
    progress = _Progress(input_bytes=None)
    progress.start()
    clock.now += 4
    progress.add(3, 30, records("a", "b", "c"))
    assert capsys.readouterr().err == "normxlogit: 3 docs, 30 tokens scored in 4.0 s (8 tokens/s)\n"


def test_copies_in_one_process_share_one_counter(clock, capsys):
    progress = _Progress(input_bytes=8)
    copies = [pickle.loads(pickle.dumps(progress)) for _ in range(2)]
    assert all(c is progress for c in copies)
    copies[0].start()
    copies[0].add(1, 10, records("abc"))
    copies[1].add(1, 10, records("abc"))  # a second thread's copy: counted, line not due yet
    assert progress.docs == 2 and progress.tokens == 20 and progress.scored_bytes == 8
    assert capsys.readouterr().err.count("\n") == 1


def test_a_worker_process_names_itself_and_gives_no_eta(clock, capsys):
    progress = _Progress(input_bytes=8, launcher_pid=os.getpid() + 1)
    progress.start()
    clock.now += 1
    progress.add(1, 10, records("abc"))
    assert capsys.readouterr().err == (
        f"normxlogit: worker {os.getpid()}: 1 docs, 10 tokens scored in 1.0 s (10 tokens/s); "
        "50% of the input bytes\n"
    )


def test_input_bytes_only_for_uncompressed_line_files(tmp_path):
    (tmp_path / "a.txt").write_text("one\ntwo\n")
    (tmp_path / "b.jsonl").write_text('{"text": "x"}\n')
    options = pipeline_options([])
    assert line_input_bytes([str(tmp_path)], options) == 8 + 14
    with gzip.open(tmp_path / "c.txt.gz", "wt") as fh:
        fh.write("three\n")
    assert line_input_bytes([str(tmp_path)], options) is None


def annotate(tmp_path: Path, model: Path, *extra: str) -> str:
    """``normxlogit annotate`` in a fresh interpreter (Beam's import-time warning included); stderr."""
    src = tmp_path / "in.txt"
    src.write_text("".join(f"review number {i} was quite good\n" for i in range(40)))
    out = tmp_path / "out"
    argv = [str(src), "--output", str(out), "--model", str(model), "--docs-per-batch", "8", "--overwrite"]
    done = subprocess.run(
        [sys.executable, "-m", "normxlogit.pipeline.cli", "annotate", *argv, *extra],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stderr


def test_a_run_prints_progress_and_no_beam_noise(tmp_path, tiny_classifier):
    err = annotate(tmp_path, tiny_classifier)
    progress = [LINE.fullmatch(line) for line in err.splitlines() if line.startswith("normxlogit: ")]
    assert progress and all(progress), err
    first = progress[0]
    assert int(first["docs"]) == 8 and 0 < int(first["share"]) <= 100
    assert "apitools" not in err and "No shards found" not in err
    assert [line for line in err.splitlines() if not LINE.fullmatch(line)] == []


def test_verbose_shows_beams_messages(tmp_path, tiny_classifier):
    err = annotate(tmp_path, tiny_classifier, "--verbose")
    assert "apitools not found" in err
    assert "No shards found to finalize" in err  # no dead letters: the errors sink finalises nothing
    assert "INFO " in err
