"""The refusals made before the heavy imports agree with the run's own, Beam-based checks."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from normxlogit.pipeline.output_folder import OutputExistsError, claim_output
from normxlogit.pipeline.startup_checks import (
    RunRefused,
    check_local_inputs,
    check_output_free,
    finished_run_message,
)
from normxlogit.transforms.layout import MANIFEST_FILE
from normxlogit.transforms.sources import InputError, expand_inputs

FILES = ("data/a.jsonl", "data/sub/b.jsonl", "data/.hidden.txt", "top.txt")
# Patterns and whether the run finds a file for them; relative ones are read from the folder above.
PATTERNS = {
    "data/*.jsonl": True,
    "data/**/*.jsonl": True,  # Beam's ** is any characters: data/sub/b.jsonl
    "data/**.jsonl": True,
    "data/[ab].jsonl": True,
    "data/.hid*": True,  # hidden files match a glob
    "*.txt": True,  # a bare relative glob: the files here
    "data/sub/": True,
    "data": True,
    "data/*.csv": False,
    "data/x?.jsonl": False,
    "nowhere/*.jsonl": False,
    "nowhere/**": False,
    "missing.jsonl": False,
    "data/missing/": False,
}


@pytest.fixture
def tree(tmp_path, monkeypatch):
    for name in FILES:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text('{"text": "a"}\n')
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _run_refusal(pattern: str) -> str | None:
    """The run's message for ``pattern`` when it matches nothing (the run expands absolute paths)."""
    try:
        expand_inputs([os.path.abspath(pattern)])
    except InputError as err:
        return str(err).replace(os.path.abspath(pattern), pattern)
    return None


@pytest.mark.parametrize("pattern", list(PATTERNS))
def test_a_missing_local_input_is_refused_as_the_run_refuses_it(tree, pattern):
    try:
        check_local_inputs([pattern])
        early = None
    except RunRefused as err:
        early = str(err)
    late = _run_refusal(pattern)
    assert (early is None) == PATTERNS[pattern]
    assert early == (None if PATTERNS[pattern] else late)


def test_a_glob_is_refused_only_when_beam_matches_nothing(tree):
    # fnmatch's * crosses folders where Beam's does not: data/*b.jsonl is not refused early (it might
    # match), and the run refuses it; the reverse never happens.
    check_local_inputs(["data/*b.jsonl"])
    assert _run_refusal("data/*b.jsonl") == "data/*b.jsonl: no file matches this pattern"


def test_remote_inputs_are_left_to_the_run():
    check_local_inputs(["gs://no-bucket/*.jsonl", "s3://b/missing.jsonl", "https://h/x.jsonl"])


@pytest.fixture
def finished(tmp_path, synthetic) -> Path:
    """A small synthetic finished run (no model)."""
    run = tmp_path / "run"
    synthetic.write_synthetic_run(run, 3)
    return run


def test_a_finished_run_is_refused_in_the_words_of_claim_output(finished, monkeypatch):
    monkeypatch.chdir(finished.parent)
    with pytest.raises(RunRefused) as early:
        check_output_free("run", overwrite=False)
    with pytest.raises(OutputExistsError) as late:
        claim_output(str(finished), overwrite=False)
    assert str(early.value) == str(late.value) == finished_run_message(str(finished))
    check_output_free("run", overwrite=True)


@pytest.mark.parametrize("manifest", [None, b"", b"{not json", b'{"command": "annotate"}'])
def test_a_folder_without_a_finished_run_is_left_to_the_run(tmp_path, manifest):
    if manifest is not None:
        (tmp_path / MANIFEST_FILE).write_bytes(manifest)
    check_output_free(str(tmp_path), overwrite=False)
    check_output_free(str(tmp_path / "new"), overwrite=False)
    check_output_free("gs://bucket/out", overwrite=False)
