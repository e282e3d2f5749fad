"""No false "finished": the manifest is whole or absent, a run claims its folder, readers and re-runs
treat a folder without a valid manifest as unfinished (pipeline/output_folder.py, layout.py)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from normxlogit.pipeline.cli import main
from normxlogit.transforms.layout import (
    ATTRIBUTIONS,
    MANIFEST_FILE,
    MANIFEST_TEMP_FILE,
    RUNNING_FILE,
    RunNotFoundError,
    read_manifest,
)


def _corpus(folder: Path, n: int = 5) -> Path:
    folder.mkdir(exist_ok=True)
    src = folder / "texts.txt"
    src.write_text("".join(f"text number {i} of the corpus\n" for i in range(n)))
    return src


def _one_error_line(capsys, command: str = "annotate") -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"normxlogit {command}: error: ") and "\n" not in err, err
    return err


def _strace_or_skip() -> str:
    strace = shutil.which("strace")
    if strace is None or subprocess.run([strace, "-o", "/dev/null", "true"]).returncode != 0:
        pytest.skip("needs strace that may trace here (make system-deps installs it)")
    return strace


def _annotate_under_strace(out: Path, src: Path, model: Path, *inject: str) -> subprocess.CompletedProcess:
    """`normxlogit annotate` in its own process, with strace injecting faults (-P: only on that path)."""
    cmd = [
        _strace_or_skip(),
        "-f",
        "-qq",
        "-o",
        "/dev/null",
        "-P",
        str(out / MANIFEST_TEMP_FILE),
        *inject,
    ]
    cli = [sys.executable, "-m", "normxlogit.pipeline.cli", "annotate", str(src), "--output", str(out)]
    return subprocess.run([*cmd, *cli, "--model", str(model)], capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_a_manifest_write_that_fails_leaves_no_manifest_and_a_rerun_succeeds(
    tmp_path, tiny_classifier, run_files, cli
):
    src, out = _corpus(tmp_path / "in"), tmp_path / "out"
    # Every write(2) to the manifest's temporary file fails as on a full disk.
    failed = _annotate_under_strace(
        out, src, tiny_classifier, "-e", "trace=write", "-e", "inject=write:error=ENOSPC"
    )
    assert failed.returncode != 0
    assert "No space left on device" in failed.stderr
    assert not (out / MANIFEST_FILE).exists() and not (out / MANIFEST_TEMP_FILE).exists()
    assert not (out / RUNNING_FILE).exists(), "a run that ends, even failing, releases its folder"
    assert not ATTRIBUTIONS.paths(out), "no part files beside no manifest"
    with pytest.raises(RunNotFoundError, match="no manifest.json"):
        read_manifest(out)

    assert cli.annotate(src, "--output", out, "--model", tiny_classifier) == 0  # no --overwrite needed
    assert run_files.manifest(out)["counts"]["docs_annotated"] == 5
    assert not (out / RUNNING_FILE).exists() and not (out / MANIFEST_TEMP_FILE).exists()


@pytest.mark.slow
def test_a_run_killed_after_its_part_files_is_unfinished_to_readers_and_reruns(
    tmp_path, tiny_classifier, run_files, capsys, cli
):
    src, out = _corpus(tmp_path / "in"), tmp_path / "out"
    # Killed when it opens the manifest's temporary file: every part file is renamed into place.
    killed = _annotate_under_strace(
        out, src, tiny_classifier, "-e", "trace=openat", "-e", "inject=openat:signal=SIGKILL"
    )
    assert killed.returncode != 0
    assert ATTRIBUTIONS.paths(out), "complete part files are visible"
    assert not (out / MANIFEST_FILE).exists()
    marker = json.loads((out / RUNNING_FILE).read_text())
    assert marker["host"] == socket.gethostname() and marker["start_time"]

    for command, args in (("report", ["--out", tmp_path / "r.html"]), ("show", ["--doc", f"{src}#L1"])):
        assert main([command, str(out), *map(str, args)]) == 2
        err = _one_error_line(capsys, command)
        assert f"{out} is not a finished normxlogit run (no manifest.json)" in err
        assert (
            f"{out / RUNNING_FILE} names the run that is writing it or was stopped (pid {marker['pid']}"
            in err
        )
    assert not (tmp_path / "r.html").exists()

    assert cli.annotate(src, "--output", out, "--model", tiny_classifier) == 2
    err = _one_error_line(capsys)
    assert (
        f"{out} holds an unfinished run that is no longer running ({out / RUNNING_FILE}: pid {marker['pid']}"
        in err
    )
    assert err.endswith(f"pass --overwrite to clear it, or delete {out / RUNNING_FILE}")

    assert cli.annotate(src, "--output", out, "--model", tiny_classifier, "--overwrite") == 0
    assert run_files.manifest(out)["counts"]["docs_annotated"] == 5
    assert not (out / RUNNING_FILE).exists()


def test_an_empty_or_unparsable_manifest_is_an_unfinished_run(
    tmp_path, tiny_classifier, run_files, capsys, cli
):
    src, out = _corpus(tmp_path / "in"), tmp_path / "out"
    assert cli.annotate(src, "--output", out, "--model", tiny_classifier) == 0
    assert not (out / RUNNING_FILE).exists(), "released at the end"
    capsys.readouterr()
    for body, says in (
        (b"", "manifest.json is empty"),
        (b'{"command": "annot', "manifest.json is not a normxlogit manifest (JSONDecodeError"),
    ):
        (out / MANIFEST_FILE).write_bytes(body)
        assert main(["report", str(out), "--out", str(tmp_path / "r.html")]) == 2
        err = _one_error_line(capsys, "report")
        assert f"{out} is not a finished normxlogit run ({says}" in err
        assert "part file(s) are left from a run that did not finish" in err
    # A re-run needs no --overwrite: there is no finished run to protect.
    assert cli.annotate(src, "--output", out, "--model", tiny_classifier) == 0
    assert read_manifest(out).counts.docs_annotated == 5


def test_a_live_runs_folder_is_refused_at_once_even_with_overwrite(tmp_path, tiny_classifier, capsys, cli):
    src, out = _corpus(tmp_path / "in"), tmp_path / "out"
    out.mkdir()
    # This test's own process stands for a live run on this host.
    live = {"pid": os.getpid(), "host": socket.gethostname(), "start_time": "2025-01-01T00:00:00+00:00"}
    (out / RUNNING_FILE).write_text(json.dumps(live))
    for extra in ([], ["--overwrite"]):
        assert cli.annotate(src, "--output", out, "--model", tiny_classifier, *extra) == 2
        err = _one_error_line(capsys)
        assert err == (
            f"normxlogit annotate: error: {out} is being written by another run ({out / RUNNING_FILE}: "
            f"pid {os.getpid()} on host {socket.gethostname()}, started 2025-01-01T00:00:00+00:00); "
            "wait for it to end, or choose another --output"
        )
    assert json.loads((out / RUNNING_FILE).read_text()) == live, "another run's marker is left alone"

    # A marker from another host cannot be checked: refused, unless --overwrite takes the folder.
    (out / RUNNING_FILE).write_text(json.dumps({**live, "host": "elsewhere"}))
    assert cli.annotate(src, "--output", out, "--model", tiny_classifier) == 2
    assert "may be in use by another run" in _one_error_line(capsys)
    assert cli.annotate(src, "--output", out, "--model", tiny_classifier, "--overwrite") == 0
    assert not (out / RUNNING_FILE).exists()


def _make_read_only(folder: Path) -> bool:
    """Make ``folder`` unwritable even for root (chattr +i); False where that is not possible."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        return True
    return (
        shutil.which("chattr") is not None and subprocess.run(["chattr", "+i", str(folder)]).returncode == 0
    )


def test_an_unwritable_output_fails_at_once_in_one_line(tmp_path, tiny_classifier, capsys, cli):
    src = _corpus(tmp_path / "in")
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    assert cli.annotate(src, "--output", not_a_folder / "out", "--model", tiny_classifier) == 2
    assert _one_error_line(capsys) == (
        f"normxlogit annotate: error: cannot write to the output folder {not_a_folder / 'out'}: "
        "Not a directory; choose a writable --output"
    )

    read_only = tmp_path / "read-only"
    read_only.mkdir()
    if not _make_read_only(read_only):
        pytest.skip("cannot make a folder read-only here")
    try:
        assert cli.annotate(src, "--output", read_only, "--model", tiny_classifier) == 2
        err = _one_error_line(capsys)
    finally:
        if os.geteuid() == 0:
            subprocess.run(["chattr", "-i", str(read_only)])
        read_only.chmod(0o755)
    assert err.startswith(f"normxlogit annotate: error: cannot write to the output folder {read_only}: ")
    assert err.endswith("; choose a writable --output")
    assert list(read_only.iterdir()) == []
