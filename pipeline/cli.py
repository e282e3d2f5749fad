"""The ``normxlogit`` command line: one subcommand per module of ``normxlogit.pipeline.commands``.

    normxlogit annotate INPUT... --output OUT [options] [Beam pipeline options]

Every flag that is not normxlogit's own is a Beam pipeline option and passes through unchanged
(``--runner``, ``--direct_num_workers``, ``--project``, ``--temp_location``, ...); a flag that is
neither is refused with the nearest known one.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from normxlogit.pipeline.commands.common import BEAM_EPILOG, ModelPathError
from normxlogit.pipeline.options import UnknownOptionError, split_beam_args

COMMANDS = ("annotate", "evaluate", "report", "show")
VERBOSE = "--verbose"
# Beam warnings that say nothing about a normxlogit run, hidden unless --verbose: the GCP extras
# check that apache_beam logs when it is imported, and a sink with nothing to write (errors/
# without dead letters).
BEAM_NOISE = ("apitools not found", "No shards found to finalize")


class QuietBeamNoise(logging.Filter):
    """Drops the ``BEAM_NOISE`` warnings; every other record passes."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR:
            return True
        message = record.getMessage()
        return not any(noise in message for noise in BEAM_NOISE)


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
    # splitting, which imports Beam.
    configure_logging(verbose=VERBOSE in argv[1 : argv.index("--") if "--" in argv else None])
    try:
        mine, beam_args = split_beam_args(argv[1:], subs[command])
    except UnknownOptionError as err:
        return _fail(command, err)
    args = parser.parse_args([command, *mine])
    try:
        return _module(command).run(args, beam_args)
    except user_errors() as err:
        return _fail(command, err)


def _fail(command: str, err: BaseException) -> int:
    print(f"normxlogit {command}: error: {err}", file=sys.stderr)
    return 2


def user_errors() -> tuple[type[BaseException], ...]:
    """Errors a user can fix: printed as one line, no traceback."""
    from normxlogit.api import LayerError
    from normxlogit.default_model import DefaultModelMissing
    from normxlogit.encoding import TargetError
    from normxlogit.heads import UnsupportedModelError
    from normxlogit.loading import ModelLoadError
    from normxlogit.pipeline.stages import OutputExistsError
    from normxlogit.transforms.sources import InputError

    return (
        ModelPathError,
        LayerError,
        TargetError,
        DefaultModelMissing,
        UnsupportedModelError,
        ModelLoadError,
        OutputExistsError,
        InputError,
    )


if __name__ == "__main__":
    sys.exit(main())
