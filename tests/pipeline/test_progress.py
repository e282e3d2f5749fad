"""Progress lines of ``annotate`` and ``evaluate`` runs, and Beam's noise kept off stderr unless --verbose.

The lines' clock and counting are unit-tested in ``tests/transforms/test_progress.py``; the runs
here assert what the lines say, never how long anything took.
"""

from __future__ import annotations

import gzip
import json
import re
import subprocess
import sys
from pathlib import Path

from normxlogit.pipeline.commands.common import line_input_bytes
from normxlogit.pipeline.options import pipeline_options

LINE = re.compile(
    r"normxlogit: (?P<docs>[\d,]+) docs, (?P<tokens>[\d,]+) tokens scored in [\d.,]+ s \([\d,]+ tokens/s\); "
    r"(?P<share>\d+)% of the input bytes(, about [\d,]+ s left)?"
)
EVALUATE_LINE = re.compile(
    r"normxlogit: (?P<docs>[\d,]+) docs, (?P<tokens>[\d,]+) tokens evaluated in [\d.,]+ s \([\d,]+ tokens/s\)"
    r"(; (?P<share>\d+)% of the input bytes(, about [\d,]+ s left)?)?"
)
REVIEWS = [f"review number {i} was quite good" for i in range(40)]  # 8 tokens each, [CLS] and [SEP] in


def test_input_bytes_only_for_uncompressed_line_files(tmp_path):
    (tmp_path / "a.txt").write_text("one\ntwo\n")
    (tmp_path / "b.jsonl").write_text('{"text": "x"}\n')
    options = pipeline_options([])
    assert line_input_bytes([str(tmp_path)], options) == 8 + 14
    with gzip.open(tmp_path / "c.txt.gz", "wt") as fh:
        fh.write("three\n")
    assert line_input_bytes([str(tmp_path)], options) is None


def cli_in_subprocess(tmp_path: Path, command: str, *argv: str) -> str:
    """``normxlogit COMMAND`` in a fresh interpreter (Beam's import-time warning included); stderr."""
    done = subprocess.run(
        [sys.executable, "-m", "normxlogit.pipeline.cli", command, *argv, "--output", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stderr


def annotate_reviews(tmp_path: Path, model: Path, *extra: str) -> str:
    """``normxlogit annotate`` of 40 reviews, 8 records a batch unless ``extra`` says otherwise; stderr."""
    src = tmp_path / "in.txt"
    src.write_text("".join(f"{text}\n" for text in REVIEWS))
    return cli_in_subprocess(
        tmp_path, "annotate", str(src), "--model", str(model), "--docs-per-batch", "8", *extra
    )


def progress_lines(err: str, pattern: re.Pattern = LINE) -> list[re.Match]:
    """The progress lines of a run's stderr; every line of it must be one."""
    lines = [pattern.fullmatch(line) for line in err.splitlines()]
    assert lines and all(lines), err
    return lines


def test_a_run_prints_progress_and_no_beam_noise(tmp_path, tiny_classifier):
    err = annotate_reviews(tmp_path, tiny_classifier)
    first = progress_lines(err)[0]  # nothing but progress lines
    assert int(first["docs"]) == 8 and 0 < int(first["share"]) <= 100
    assert "apitools" not in err and "No shards found" not in err


def test_verbose_shows_beams_messages(tmp_path, tiny_classifier):
    err = annotate_reviews(tmp_path, tiny_classifier, "--verbose")
    assert "apitools not found" in err
    assert "No shards found to finalize" in err  # no dead letters: the errors sink finalises nothing
    assert "INFO " in err


def test_a_run_smaller_than_one_batch_prints_after_its_first_bucket(tmp_path, tiny_classifier):
    """40 records, one RunInference batch of 2048, buckets of 4 (--batch-tokens 32): the first line
    counts the first bucket, not the whole batch as counting per batch would."""
    err = annotate_reviews(tmp_path, tiny_classifier, "--docs-per-batch", "2048", "--batch-tokens", "32")
    first = progress_lines(err)[0]
    assert int(first["docs"]) == 4 and int(first["tokens"]) == 4 * 8
    assert int(first["share"]) == 10  # 4 of the 40 equal lines


def test_evaluate_prints_progress_lines(tmp_path, tiny_classifier):
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"text": text, "label": "positive"}) + "\n" for text in REVIEWS[:12]))
    argv = ["--model", str(tiny_classifier), "--label-field", "label", "--methods", "normxlogit,random"]
    err = cli_in_subprocess(tmp_path, "evaluate", str(src), *argv, "--batch-tokens", "32")
    first = progress_lines(err, EVALUATE_LINE)[0]
    assert int(first["docs"]) == 4 and int(first["tokens"]) == 4 * 8  # one bucket of 12 records
