"""Ctrl-C and SIGTERM during a command: one line, the exit status a shell expects, no traceback.

Within ``signals_caught``, SIGINT raises ``KeyboardInterrupt`` and SIGTERM ``Terminated`` (a
``KeyboardInterrupt``) in the main thread, and the signal is remembered: Beam re-raises what
interrupted a step as a ``RuntimeError`` naming it, so the exception alone does not say a signal
ended the run. The run unwinds the same way from either: ``stages.run_to_manifest`` removes the part
files and the ``_RUNNING`` marker (a manifest is never there before the run has ended), and
``cli.main`` prints ``normxlogit COMMAND: interrupted; OUT holds no finished run`` and exits 130
(SIGINT) or 143 (SIGTERM), as a shell reports a process a signal ended.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

EXIT_SIGINT = 128 + signal.SIGINT
EXIT_SIGTERM = 128 + signal.SIGTERM


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the main thread was when it came."""


_received: list[int] = []  # the signals caught by the innermost ``signals_caught`` block


def _raise(signum, frame) -> None:
    _received.append(signum)
    raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def signals_caught() -> Iterator[None]:
    """Within the block, SIGINT and SIGTERM raise in the main thread and are remembered
    (``caught``). Elsewhere than in the main thread, nothing changes (Python takes signals there
    only)."""
    if not _main_thread():
        yield
        return
    _received.clear()
    previous = {sig: signal.signal(sig, _raise) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def signalled() -> bool:
    """Whether a signal has ended (is ending) the command: Beam's logged tracebacks of the
    interrupted steps are noise then."""
    return bool(_received)


def caught(err: BaseException) -> int | None:
    """The exit status for ``err`` when a signal ended the command (130 SIGINT, 143 SIGTERM),
    whatever Beam wrapped it in; None otherwise."""
    if _received:
        return EXIT_SIGTERM if _received[0] == signal.SIGTERM else EXIT_SIGINT
    if isinstance(err, KeyboardInterrupt):
        return EXIT_SIGTERM if isinstance(err, Terminated) else EXIT_SIGINT
    return None


@contextlib.contextmanager
def signals_ignored() -> Iterator[None]:
    """Within the block, SIGINT and SIGTERM are ignored: cleanup that a second Ctrl-C must not cut
    short (removing a failed run's files)."""
    if not _main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def interrupted_message(command: str, output: str | None) -> str:
    """The one line an interrupted command prints."""
    tail = f"; {output} holds no finished run" if output else ""
    return f"normxlogit {command}: interrupted{tail}"
