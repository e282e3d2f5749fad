"""One module per ``normxlogit`` subcommand.

Each module defines ``NAME``, ``add_parser(subparsers) -> ArgumentParser`` and
``run(args, beam_args) -> int``; ``normxlogit.pipeline.cli.COMMANDS`` lists them.
"""
