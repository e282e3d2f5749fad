"""The ``normxlogit`` command line: one subcommand per module of ``normxlogit.pipeline.commands``.

    normxlogit annotate INPUT... --output OUT [options] [Beam pipeline options]

Every flag that is not normxlogit's own is a Beam pipeline option and passes through unchanged
(``--runner``, ``--direct_num_workers``, ``--project``, ``--temp_location``, ...).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from normxlogit.pipeline.commands.common import BEAM_EPILOG
from normxlogit.pipeline.options import split_beam_args

COMMANDS = ("annotate", "evaluate", "report", "show")


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
    mine, beam_args = split_beam_args(argv[1:], subs[command])
    args = parser.parse_args([command, *mine])
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return _module(command).run(args, beam_args)
    except user_errors() as err:
        print(f"normxlogit {command}: error: {err}", file=sys.stderr)
        return 2


def user_errors() -> tuple[type[BaseException], ...]:
    """Errors a user can fix: printed as one line, no traceback."""
    from normxlogit.api import LayerError
    from normxlogit.default_model import DefaultModelMissing
    from normxlogit.heads import UnsupportedModelError
    from normxlogit.loading import ModelLoadError
    from normxlogit.pipeline.stages import OutputExistsError
    from normxlogit.transforms.sources import InputError

    return (
        LayerError,
        DefaultModelMissing,
        UnsupportedModelError,
        ModelLoadError,
        OutputExistsError,
        InputError,
    )


if __name__ == "__main__":
    sys.exit(main())
