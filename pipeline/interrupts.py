"""Ctrl-C and SIGTERM during a command: one line, the exit status a shell expects, no traceback.

Within ``signals_caught``, SIGINT raises ``KeyboardInterrupt`` and SIGTERM ``Terminated`` (a
``KeyboardInterrupt``) in the main thread, and the signal is remembered (``CaughtSignals``): Beam
re-raises what interrupted a step as a ``RuntimeError`` naming it, so the exception alone does not
say a signal ended the run. The run unwinds the same way from either: ``stages.run_to_manifest``
removes the part files and the ``_RUNNING`` marker (a manifest is never there before the run has
ended), and ``cli.main`` prints ``normxlogit COMMAND: interrupted; OUT holds no finished run`` and
exits 130 (SIGINT) or 143 (SIGTERM), as a shell reports a process a signal ended.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

EXIT_SIGINT = 128 + signal.SIGINT
EXIT_SIGTERM = 128 + signal.SIGTERM


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the main thread was when it came."""


@dataclass
class CaughtSignals:
    """The signals a ``signals_caught`` block has caught, in order."""

    received: list[int] = field(default_factory=list)

    def exit_status(self, err: BaseException) -> int | None:
        """130 (SIGINT) or 143 (SIGTERM) when a signal ended the block with ``err``, whatever Beam
        wrapped it in; None when ``err`` has another cause."""
        first = self.received[0] if self.received else None
        if first is None and isinstance(err, KeyboardInterrupt):  # raised outside our handlers
            first = signal.SIGTERM if isinstance(err, Terminated) else signal.SIGINT
        return None if first is None else EXIT_SIGTERM if first == signal.SIGTERM else EXIT_SIGINT


_active: CaughtSignals | None = None  # the block in force, for ``signalled``


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def signals_caught(
    on_signal: Callable[[], object] | None = None, *, ignore_after: bool = False
) -> Iterator[CaughtSignals]:
    """Within the block, SIGINT raises ``KeyboardInterrupt`` and SIGTERM ``Terminated`` in the main
    thread, and each is remembered in the yielded ``CaughtSignals``; once one has come, exceptions
    that end other threads (Beam's, left failing by the interrupted run) are not printed. Elsewhere
    than in the main thread nothing changes (Python takes signals in its main thread only); the
    state is still yielded, empty.

    ``on_signal`` is called in the handler, before the exception is raised: what must stop before
    the run unwinds (the local runner's worker processes, ``sdk_worker.stop_workers``).

    Only the first signal raises: the block is ending for it, and a second (a Ctrl-C pressed twice,
    or one the kernel delivered while the first was being handled) is recorded, not raised in the
    middle of the unwinding. With ``ignore_after`` (the command line, whose process ends with the
    block), a block that a signal ended leaves SIGINT and SIGTERM ignored: a later signal would
    otherwise meet the restored default handler after the exit status is decided and raise where
    nothing catches it (``cli.entry`` then ends the process with that status)."""
    global _active
    state = CaughtSignals()
    if not _main_thread():
        yield state
        return

    def raise_for(signum, frame) -> None:
        state.received.append(signum)
        if len(state.received) > 1:  # already ending for the first one
            return
        if on_signal is not None:
            on_signal()
        raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()

    def quiet_once_signalled(args) -> None:  # Beam's threads that the interrupted run leaves failing
        if not state.received:
            hook(args)

    previous = {sig: signal.signal(sig, raise_for) for sig in (signal.SIGINT, signal.SIGTERM)}
    outer, _active = _active, state
    hook, threading.excepthook = threading.excepthook, quiet_once_signalled
    try:
        yield state
    finally:
        _active = outer
        threading.excepthook = hook
        ending = ignore_after and bool(state.received)
        for sig, handler in previous.items():
            signal.signal(sig, signal.SIG_IGN if ending else handler)


def signalled() -> bool:
    """Whether a signal is ending the command (inside ``signals_caught``): Beam's logged tracebacks
    of the interrupted steps are noise then."""
    return _active is not None and bool(_active.received)


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
