"""Separate normxlogit's own flags from Beam pipeline options, wherever they appear.

``argparse.parse_known_args`` alone would take the value of an unknown ``--runner DirectRunner``
for an input path. Beam's option classes know which of their flags take a value, so argv is
split with their own parsers first; every Beam flag passes through unchanged. A flag that is
neither ours nor Beam's is refused with the nearest known flag, instead of being dropped by Beam
with a warning. Beam is imported only when argv holds a flag that is not ours, so ``--help`` and
``report``/``show`` start fast.
"""

from __future__ import annotations

import argparse
import difflib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from apache_beam.options.pipeline_options import PipelineOptions


def _beam_actions() -> dict[str, argparse.Action]:
    from apache_beam.options.pipeline_options import PipelineOptions

    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    seen = set()
    stack = list(PipelineOptions.__subclasses__())
    while stack:
        cls = stack.pop()
        if cls in seen:
            continue
        seen.add(cls)
        stack.extend(cls.__subclasses__())
        try:
            cls._add_argparse_args(parser)
        except argparse.ArgumentError:
            pass  # an option declared by two classes
    return dict(parser._option_string_actions)


class UnknownOptionError(ValueError):
    """A ``--flag`` that neither normxlogit nor any Beam option class defines."""


def _takes_value(action: argparse.Action, following: str | None) -> bool:
    """Whether ``action``'s flag, written without ``=``, consumes the next token."""
    if action.nargs == 0:
        return False
    # Beam's ValueProvider options take an optional value (nargs="?"): not the next flag.
    return action.nargs != "?" or (following is not None and not following.startswith("-"))


def unknown_option(flag: str, known: list[str]) -> UnknownOptionError:
    """The error for ``flag``, naming the nearest of the ``known`` flags when one is close."""
    # Compared without the leading dashes, which every flag shares.
    names = {f.lstrip("-"): f for f in known}
    close = difflib.get_close_matches(flag.lstrip("-"), list(names), n=1, cutoff=0.6)
    hint = f"; did you mean {names[close[0]]}?" if close else "; see --help for normxlogit's options"
    return UnknownOptionError(f"unrecognized option {flag}{hint}")


def split_beam_args(argv: list[str], ours: argparse.ArgumentParser) -> tuple[list[str], list[str]]:
    """Split argv into (normxlogit's tokens, Beam's tokens), keeping each flag with its value.

    Flags are matched whole (no abbreviations), as ``--flag value`` or ``--flag=value``; tokens
    after a bare ``--`` are ours.

    Raises:
        UnknownOptionError: a ``--flag`` that neither normxlogit nor any Beam option class knows.
    """
    own = ours._option_string_actions
    beam: dict[str, argparse.Action] | None = None  # Beam's flags, read at the first flag not ours
    mine: list[str] = []
    theirs: list[str] = []
    i = 0
    while i < len(argv):
        token = argv[i]
        following = argv[i + 1] if i + 1 < len(argv) else None
        flag, inline = token.split("=", 1)[0], "=" in token
        if token == "--":
            mine.extend(argv[i:])
            break
        if token.startswith("-") and flag in own:
            n = 0 if inline or not _takes_value(own[flag], following) else 1
            mine.extend(argv[i : i + 1 + n])
        elif token.startswith("--"):
            beam = _beam_actions() if beam is None else beam
            if flag not in beam:
                raise unknown_option(flag, [*(f for f in own if f.startswith("--")), *beam])
            n = 0 if inline or not _takes_value(beam[flag], following) else 1
            theirs.extend(argv[i : i + 1 + n])
        else:
            n = 0
            mine.append(token)
        i += 1 + n
    return mine, theirs


# Without --runner, pipelines run on Beam's FnApiRunner, the local runner the DirectRunner uses
# here: Beam's DirectRunner first tries its Prism runner, which it downloads from GitHub on each
# run (a network request, and a different runner than the one tested). ``--runner DirectRunner``
# still lets Beam choose.
LOCAL_RUNNER = "FnApiRunner"
# Its default when the user sets neither flag below, for a model on an accelerator: two threads in
# one process, sharing the model (RunInference's shared handle), so that one thread tokenizes,
# converts and writes while the other's forward pass runs. Forward passes take turns on the model
# (``normxlogit.engine``), so this overlaps host and device work without doubling device memory.
# A model on the CPU shares the cores with the host work: one thread, and torch's threads get the
# cores (two threads measured 0.82 of the bare forward pass with SmolLM2 on 2 cores, one 0.97).
ACCELERATOR_THREADS = 2
_DIRECT_FLAGS = ("--direct_num_workers", "--direct_running_mode")


def local_threads(device: str) -> int:
    """Threads of the local runner for a model on ``device`` (``cpu``, ``cuda[:N]``, ``auto``...)."""
    if device == "auto":
        import torch

        return ACCELERATOR_THREADS if torch.cuda.is_available() else 1
    return 1 if device == "cpu" else ACCELERATOR_THREADS


def pipeline_options(beam_args: list[str], threads: int = 1) -> PipelineOptions:
    """Beam's PipelineOptions from the pass-through flags, with the local runner's defaults.

    Without ``--runner``, the runner is ``LOCAL_RUNNER``; on it or on the DirectRunner, with
    neither ``--direct_num_workers`` nor ``--direct_running_mode`` given, bundles run in
    ``threads`` threads (``local_threads``; ``multi_threading`` when more than one). Other runners
    and explicit flags are left as they are.
    """
    from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions, StandardOptions

    options = PipelineOptions(beam_args)
    standard = options.view_as(StandardOptions)
    if standard.runner is None:
        standard.runner = LOCAL_RUNNER
    chose = any(arg.split("=", 1)[0] in _DIRECT_FLAGS for arg in beam_args)
    if standard.runner in (LOCAL_RUNNER, "DirectRunner", "direct") and not chose and threads > 1:
        direct = options.view_as(DirectOptions)
        direct.direct_running_mode = "multi_threading"
        direct.direct_num_workers = threads
    return options


def local_runner(options: PipelineOptions):
    """The runner object for ``LOCAL_RUNNER``: Beam's FnApiRunner set up as the DirectRunner sets it
    up, with the pipeline options in its provision info, so that worker processes
    (``multi_processing``) get them too (S3 endpoint and credentials, say)."""
    from apache_beam.portability.api import beam_provision_api_pb2
    from apache_beam.runners.portability.fn_api_runner import fn_runner
    from apache_beam.runners.portability.portable_runner import JobServiceHandle

    encoded = JobServiceHandle.encode_pipeline_options(options.get_all_options())
    info = fn_runner.ExtendedProvisionInfo(beam_provision_api_pb2.ProvisionInfo(pipeline_options=encoded))
    return fn_runner.FnApiRunner(provision_info=info)
