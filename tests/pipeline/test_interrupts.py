"""Ctrl-C and SIGTERM: one line, exit 130 / 143, no traceback, and a folder with no run in it.

Unit tests of ``pipeline/interrupts.py``, then real launches of ``normxlogit annotate`` in a fresh
process group, signalled while torch and Beam are still being imported, and while scoring (after
the first progress line), in one thread and in two.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from normxlogit.pipeline import sdk_worker
from normxlogit.pipeline.interrupts import (
    CaughtSignals,
    Terminated,
    interrupted_message,
    signalled,
    signals_caught,
    signals_ignored,
)
from normxlogit.transforms.layout import MANIFEST_FILE, RUNNING_FILE


def test_a_caught_signal_gives_its_exit_status_whatever_beam_wrapped_it_in():
    wrapped = RuntimeError("KeyboardInterrupt [while running 'Score/BeamML_RunInference']")
    assert CaughtSignals([signal.SIGINT]).exit_status(wrapped) == 130
    assert CaughtSignals([signal.SIGTERM, signal.SIGINT]).exit_status(wrapped) == 143
    assert CaughtSignals().exit_status(wrapped) is None
    assert CaughtSignals().exit_status(KeyboardInterrupt()) == 130
    assert CaughtSignals().exit_status(Terminated()) == 143
    assert (
        interrupted_message("annotate", "out")
        == "normxlogit annotate: interrupted; out holds no finished run"
    )


def test_signals_raise_inside_the_block_and_handlers_come_back_after():
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    with signals_caught() as caught:
        with pytest.raises(Terminated):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
        assert caught.received == [signal.SIGTERM] and signalled()
        with signals_ignored():
            os.kill(os.getpid(), signal.SIGINT)  # ignored: nothing raised
            time.sleep(0.05)
        assert caught.received == [signal.SIGTERM]
    assert {sig: signal.getsignal(sig) for sig in before} == before
    assert not signalled()  # the state goes with its block


def test_only_the_first_signal_raises_and_ignore_after_leaves_them_ignored():
    """A second signal while the block unwinds is recorded, not raised; with ``ignore_after`` the
    handlers stay SIG_IGN after a block that a signal ended (the command line's process is ending),
    and come back after a block that none ended."""
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with signals_caught(ignore_after=True):
            pass
        assert {sig: signal.getsignal(sig) for sig in before} == before
        unwound = []
        with signals_caught(ignore_after=True) as caught:
            with pytest.raises(KeyboardInterrupt):
                try:
                    os.kill(os.getpid(), signal.SIGINT)
                    time.sleep(5)
                finally:
                    os.kill(os.getpid(), signal.SIGTERM)  # a second one, mid-unwinding
                    time.sleep(0.05)
                    unwound.append(True)
        assert unwound == [True] and caught.received == [signal.SIGINT, signal.SIGTERM]
        assert all(signal.getsignal(sig) == signal.SIG_IGN for sig in before)
        os.kill(os.getpid(), signal.SIGINT)  # ignored after the block: nothing raised
        time.sleep(0.05)
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)


@pytest.mark.slow
def test_a_second_ctrl_c_right_after_the_first_still_exits_130(tmp_path, tiny_classifier):
    """Two Ctrl-Cs 50 ms apart while the libraries load: one line, exit 130, not a death by signal."""
    proc, out = _launch(tmp_path, tiny_classifier)
    time.sleep(1.0)
    os.killpg(proc.pid, signal.SIGINT)
    time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)
    stderr = proc.stderr.read()
    _assert_one_line_and_no_run(proc.wait(timeout=120), 130, stderr, out)


ENTRY_MODULE = """
import ctypes, sys
from normxlogit.pipeline import cli

def interrupted_in_a_library():
    # What a library import that runs code through PyRun_String does when our handler's
    # KeyboardInterrupt lands in it: the exception leaves PyRun_String, and is caught later.
    run = ctypes.pythonapi.PyRun_String
    run.restype = ctypes.py_object
    run.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.py_object, ctypes.py_object]
    try:
        run(b"raise KeyboardInterrupt", 257, {}, {})  # 257: Py_file_input
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
    return int(sys.argv[1])

cli.main = interrupted_in_a_library
(cli.entry if sys.argv[2] == "entry" else lambda: sys.exit(cli.main()))()
"""


@pytest.mark.parametrize("status", [130, 143])
def test_the_program_exits_with_the_signals_status_not_by_the_signal(tmp_path, status):
    """Under ``python -m``, CPython kills itself with SIGINT at exit (status -2) once a
    KeyboardInterrupt has left a ``PyRun_String`` call, even a caught one; ``cli.entry`` ends the
    process with the status it decided. The plain ``sys.exit`` shows the trap is real."""
    (tmp_path / "entry_probe.py").write_text(ENTRY_MODULE)
    run = lambda how: subprocess.run(  # noqa: E731
        [sys.executable, "-m", "entry_probe", str(status), how], cwd=tmp_path, capture_output=True, text=True
    )
    assert run("sys.exit").returncode == -signal.SIGINT
    done = run("entry")
    assert done.returncode == status and done.stderr == "interrupted\n"


def test_on_signal_runs_in_the_handler_before_the_exception():
    order = []
    with signals_caught(on_signal=lambda: order.append("on_signal")):
        with pytest.raises(KeyboardInterrupt):
            try:
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(5)
            finally:
                order.append("unwound")
    assert order == ["on_signal", "unwound"]


def test_stop_workers_kills_the_workers_it_started_and_nothing_else():
    """Only this process's children started as ``sdk_worker``: a sibling child is left running."""
    nap = "import time; time.sleep(60)"
    worker = subprocess.Popen([sys.executable, "-c", nap, sdk_worker.MODULE])
    other = subprocess.Popen([sys.executable, "-c", nap])
    try:
        time.sleep(0.3)
        assert sdk_worker.stop_workers() == [worker.pid]
        assert worker.wait(timeout=10) == -signal.SIGKILL
        assert other.poll() is None
    finally:
        for proc in (worker, other):
            proc.kill()
            proc.wait()


def test_outside_the_main_thread_nothing_is_installed():
    seen = {}

    def run():
        with signals_caught() as caught:
            seen["handler"] = signal.getsignal(signal.SIGTERM)
            seen["received"] = caught.received

    before = signal.getsignal(signal.SIGTERM)
    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    assert seen == {"handler": before, "received": []}


def _launch(tmp_path: Path, model: Path, *extra: str) -> tuple[subprocess.Popen, Path]:
    corpus = tmp_path / "corpus.txt"
    words = "the film was great bad long short funny sad plot music acting".split()
    corpus.write_text(
        "\n".join(" ".join(words[(i + j) % len(words)] for j in range(30)) for i in range(40000))
    )
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "normxlogit.pipeline.cli", "annotate", str(corpus), "--output", str(out)]
    proc = subprocess.Popen(
        [*cmd, "--model", str(model), "--docs-per-batch", "512", *extra],
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a shell job
    )
    return proc, out


def _assert_one_line_and_no_run(code: int, status: int, stderr: str, out: Path) -> None:
    assert code == status, stderr
    assert stderr.strip().splitlines()[-1] == f"normxlogit annotate: interrupted; {out} holds no finished run"
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr and "Terminated" not in stderr
    assert not (out / MANIFEST_FILE).exists() and not (out / RUNNING_FILE).exists()
    assert not list(out.rglob("part-*")) and not list(out.rglob("beam-temp-*"))


@pytest.mark.slow
@pytest.mark.parametrize(
    "signum, whole_group, status, extra",
    [
        (signal.SIGINT, True, 130, ()),
        (signal.SIGTERM, False, 143, ()),
        (signal.SIGINT, True, 130, ("--direct_num_workers", "2", "--direct_running_mode", "multi_threading")),
        (
            signal.SIGINT,
            True,
            130,
            ("--direct_num_workers", "2", "--direct_running_mode", "multi_processing"),
        ),
        (
            signal.SIGTERM,
            False,
            143,
            ("--direct_num_workers", "2", "--direct_running_mode", "multi_processing"),
        ),
    ],
    ids=["ctrl-c", "sigterm", "ctrl-c-two-threads", "ctrl-c-two-processes", "sigterm-two-processes"],
)
def test_an_interrupted_run_says_so_in_one_line_and_leaves_no_run(
    tmp_path, tiny_classifier, signum, whole_group, status, extra
):
    """Signalled after its first progress line: the model is scoring, the folder is claimed. To its
    process group, as a terminal's Ctrl-C (Beam's worker processes get it too); to the launcher
    alone, as a service manager's SIGTERM. No worker process is left behind."""
    proc, out = _launch(tmp_path, tiny_classifier, *extra)
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if "tokens scored" in line:
            break
    assert (out / RUNNING_FILE).exists(), "".join(seen)
    (os.killpg if whole_group else os.kill)(proc.pid, signum)
    stderr = "".join(seen) + proc.stderr.read()
    _assert_one_line_and_no_run(proc.wait(timeout=120), status, stderr, out)
    assert _session_processes(proc.pid) == []  # its workers are gone with it


def _session_processes(sid: int) -> list[int]:
    """Live processes of session ``sid``."""
    found = []
    for name in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.getsid(int(name)) == sid:
                found.append(int(name))
        except ProcessLookupError:
            pass
    return found


@pytest.mark.slow
@pytest.mark.parametrize("delay_s", [0.5, 2.0])
def test_ctrl_c_while_the_libraries_load_is_one_line_too(tmp_path, tiny_classifier, delay_s):
    """Ctrl-C before the run has started (torch, transformers and Beam still being imported, or the
    model being checked): the same one line, no traceback of a half-imported module."""
    proc, out = _launch(tmp_path, tiny_classifier)
    time.sleep(delay_s)
    os.killpg(proc.pid, signal.SIGINT)
    stderr = proc.stderr.read()
    _assert_one_line_and_no_run(proc.wait(timeout=120), 130, stderr, out)
