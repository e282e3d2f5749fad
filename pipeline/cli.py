"""The ``normxlogit`` command line: one subcommand per module of ``normxlogit.pipeline.commands``.

    normxlogit annotate INPUT... --output OUT [options] [Beam pipeline options]

Every flag that is not normxlogit's own is a Beam pipeline option and passes through unchanged
(``--runner``, ``--direct_num_workers``, ``--project``, ``--temp_location``, ...); a flag that is
neither is refused with the nearest known one.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import logging
import os
import sys
from typing import NoReturn

from normxlogit.default_model import DefaultModelMissing
from normxlogit.pipeline.commands.common import BEAM_EPILOG
from normxlogit.pipeline.interrupts import (
    EXIT_SIGINT,
    EXIT_SIGTERM,
    CaughtSignals,
    interrupted_message,
    signalled,
    signals_caught,
    signals_ignored,
)
from normxlogit.pipeline.options import UnknownOptionError, split_beam_args
from normxlogit.pipeline.runners import UnsupportedRunnerError, check_runner, runner_flag
from normxlogit.pipeline.sdk_worker import stop_workers
from normxlogit.pipeline.startup_checks import RunRefused

COMMANDS = ("annotate", "evaluate", "report", "show", "stats", "compare")
VERBOSE = "--verbose"
# Beam warnings that say nothing about a normxlogit run, hidden unless --verbose: the GCP extras
# check that apache_beam logs when it is imported, and a sink with nothing to write (errors/
# without dead letters).
BEAM_NOISE = ("apitools not found", "No shards found to finalize")


class QuietBeamNoise(logging.Filter):
    """Drops the ``BEAM_NOISE`` warnings and workers' tracebacks of user errors; the rest passes."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.levelno >= logging.ERROR and signalled():
            return False  # the steps a Ctrl-C or SIGTERM interrupted: the command says it in one line
        if record.levelno >= logging.ERROR:
            # A worker's traceback of an error the command reports in one line (a corrupt input
            # file): the line is the user's message, the traceback is noise; others are bugs.
            raised = record.exc_info[1] if record.exc_info else None
            text = f"{message}\n{raised!r}" if raised is not None else message
            return not any(marker in text for marker in _worker_error_markers()) and not _is_user_error(
                raised
            )
        return not any(noise in message for noise in BEAM_NOISE)


def _is_user_error(raised: BaseException | None) -> bool:
    from normxlogit.pipeline.stages import WORKER_USER_ERRORS

    while raised is not None:
        if isinstance(raised, WORKER_USER_ERRORS):
            return True
        raised = raised.__cause__ or raised.__context__
    return False


def _worker_error_markers() -> tuple[str, ...]:
    from normxlogit.pipeline.stages import WORKER_USER_ERRORS, worker_error_marker

    return tuple(worker_error_marker(cls) for cls in WORKER_USER_ERRORS)


_QUIET = QuietBeamNoise()


def configure_logging(verbose: bool) -> None:
    """WARNING and up on stderr without Beam's noise; with ``verbose``, INFO and up, all of it.

    Called before Beam is imported: apache_beam logs its apitools warning at import.
    """
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    root = logging.getLogger()
    root.setLevel(logging.INFO if verbose else logging.WARNING)
    for handler in root.handlers:
        if verbose:
            handler.removeFilter(_QUIET)
        else:
            handler.addFilter(_QUIET)


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The top-level parser and each subcommand's parser by name."""
    parser = argparse.ArgumentParser(
        prog="normxlogit",
        description="Dataset-scale NormXLogit token attributions on Apache Beam.",
        epilog=BEAM_EPILOG,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    return parser, {name: _module(name).add_parser(sub) for name in COMMANDS}


def _module(name: str):
    return importlib.import_module(f"normxlogit.pipeline.commands.{name}")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``normxlogit`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser, subs = build_parser()
    if not argv or argv[0] not in subs:
        parser.parse_args(argv or ["--help"])
        return 2
    command = argv[0]
    # --verbose takes no value, so the token is the flag wherever it stands; read it before
    # splitting, which may import Beam (when its own source cannot be read).
    verbose = VERBOSE in argv[1 : argv.index("--") if "--" in argv else None]
    configure_logging(verbose=verbose)
    try:
        check_runner(runner_flag(argv[1:]))  # before its own flags are refused as unknown ones
        mine, beam_args = split_beam_args(argv[1:], subs[command])
    except (UnknownOptionError, UnsupportedRunnerError) as err:
        return _fail(command, err)
    args = parser.parse_args([command, *mine])
    with signals_caught(on_signal=stop_workers, ignore_after=True) as signals:
        try:
            with contextlib.nullcontext() if verbose else quiet_worker_tracebacks():
                return _module(command).run(args, beam_args)
        except BaseException as err:  # noqa: BLE001  (sorted below; anything else is re-raised)
            with signals_ignored():  # a second Ctrl-C while this is decided and said
                return _exit_on(command, args, err, signals)


def _exit_on(command: str, args: argparse.Namespace, err: BaseException, signals: CaughtSignals) -> int:
    """The exit status for ``err``, with its one line: a signal (130/143), a refusal or a user
    error (2). Anything else is a bug: re-raised, with its traceback.

    Signals are sorted first: ``user_errors()`` imports the heavy modules, and a Ctrl-C may have
    come while they were being imported.
    """
    status = signals.exit_status(err)
    if status is not None:
        print(interrupted_message(command, getattr(args, "output", None)), file=sys.stderr)
        return status
    if isinstance(err, (RunRefused, DefaultModelMissing)):  # refused before the heavy imports: keep it so
        return _fail(command, err)
    if isinstance(err, Exception) and isinstance(err, user_errors()):
        return _fail(command, err)
    raise err


class _WorkerTracebackFilter(io.TextIOBase):
    """stderr, less the tracebacks that Beam's worker threads print (not log) for the user errors
    the command reports in one line; everything else is written through."""

    def __init__(self, stream):
        super().__init__()
        self._stream = stream

    def write(self, text: str) -> int:
        if "Traceback (most recent call last)" in text and (
            signalled() or any(m in text for m in _worker_error_markers())
        ):
            return len(text)
        return self._stream.write(text)

    def flush(self) -> None:
        self._stream.flush()


@contextlib.contextmanager
def quiet_worker_tracebacks():
    """Filter stderr with ``_WorkerTracebackFilter`` while a command runs."""
    stream = sys.stderr
    sys.stderr = _WorkerTracebackFilter(stream)
    try:
        yield
    finally:
        sys.stderr = stream


def _fail(command: str, err: BaseException) -> int:
    print(f"normxlogit {command}: error: {err}", file=sys.stderr)
    return 2


def user_errors() -> tuple[type[BaseException], ...]:
    """Errors a user can fix: printed as one line, no traceback."""
    from normxlogit.api import LayerError
    from normxlogit.heads import UnsupportedModelError
    from normxlogit.loading import ModelLoadError
    from normxlogit.pipeline.reconcile import LostRecordsError
    from normxlogit.pipeline.stages import OutputExistsError
    from normxlogit.targets import TargetError
    from normxlogit.transforms.sources import InputError

    return (
        LayerError,
        TargetError,
        DefaultModelMissing,
        UnsupportedModelError,
        ModelLoadError,
        OutputExistsError,
        InputError,
        LostRecordsError,
    )


def entry() -> NoReturn:
    """The ``normxlogit`` program (console script and ``python -m``): ``main``'s status as the exit
    status.

    After Ctrl-C or SIGTERM (130/143) the process ends with ``os._exit`` once its output is flushed:
    the run has cleaned up already, and a normal interpreter exit can turn the status into a death by
    SIGINT (-2). CPython remembers a KeyboardInterrupt that left a ``PyRun_String`` call, caught or
    not (some libraries run code that way while they are imported, and our handler raises where the
    main thread is), and under ``python -m`` kills itself with SIGINT at exit: CI saw it, and
    tests/pipeline/test_interrupts.py's library-loading launches met it about 1 time in 8.
    """
    status = main()
    if status in (EXIT_SIGINT, EXIT_SIGTERM):
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(status)
    sys.exit(status)


if __name__ == "__main__":
    entry()
