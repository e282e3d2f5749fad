"""Separate normxlogit's own flags from Beam pipeline options, wherever they appear.

``argparse.parse_known_args`` alone would take the value of an unknown ``--runner DirectRunner``
for an input path. Beam's option classes know which of their flags take a value, so argv is
split with what they declare; every Beam flag passes through unchanged. A flag that is neither
ours nor Beam's is refused with the nearest known flag, instead of being dropped by Beam with a
warning. Beam's flags are read from the source of its options module, without importing Beam
(seconds), so that ``--help``, ``report``, ``show`` and a refused flag answer at once.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from apache_beam.options.pipeline_options import PipelineOptions

# Where Beam declares its option classes, relative to the apache_beam package folder.
_BEAM_OPTIONS_SOURCE = Path("options", "pipeline_options.py")
_BASE_OPTIONS = "PipelineOptions"
_ADD_ARGUMENT = ("add_argument", "add_value_provider_argument")
# argparse's actions that consume no value; any other action (Beam's own Action subclasses too)
# takes one unless ``nargs`` says otherwise.
_NO_VALUE_ACTIONS = ("store_true", "store_false", "store_const", "append_const", "count", "help", "version")

Nargs = int | str | None
"""An option's ``nargs`` as argparse has it: 0 for a switch, None for one value, ``"?"`` optional."""


def beam_flags() -> dict[str, Nargs]:
    """Every flag of Beam's pipeline option classes, with its ``nargs``.

    Read from the installed ``apache_beam/options/pipeline_options.py`` without importing Beam; if
    that file cannot be found or read, Beam's option classes are asked instead (importing Beam).
    """
    path = _beam_options_path()
    try:
        flags = _flags_in_source(path.read_text(encoding="utf-8")) if path is not None else {}
    except OSError:
        flags = {}
    return flags or {flag: action.nargs for flag, action in _beam_actions().items()}


def _beam_options_path() -> Path | None:
    # find_spec of a top-level package locates it without running its __init__.
    spec = importlib.util.find_spec("apache_beam")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / _BEAM_OPTIONS_SOURCE
    return path if path.is_file() else None


def _flags_in_source(source: str) -> dict[str, Nargs]:
    """The flags that ``_add_argparse_args`` of each ``PipelineOptions`` subclass in ``source``
    declares with literal arguments, and their ``nargs``; the first declaration of a flag wins, as in
    ``_beam_actions``. Empty when ``source`` does not parse."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return {}
    classes = [node for node in tree.body if isinstance(node, ast.ClassDef)]
    options = {_BASE_OPTIONS}
    grew = True
    while grew:  # subclasses of subclasses, in any order in the file
        known = len(options)
        options |= {c.name for c in classes if any(getattr(b, "id", None) in options for b in c.bases)}
        grew = len(options) > known
    flags: dict[str, Nargs] = {}
    for cls in classes:
        if cls.name != _BASE_OPTIONS and cls.name in options:
            for flag, nargs in _declared_flags(cls):
                flags.setdefault(flag, nargs)
    return flags


def _declared_flags(cls: ast.ClassDef) -> list[tuple[str, Nargs]]:
    """(flag, nargs) of each ``parser.add_argument("--flag", ...)`` in the class's ``_add_argparse_args``."""
    methods = [m for m in cls.body if isinstance(m, ast.FunctionDef) and m.name == "_add_argparse_args"]
    calls = [
        node
        for method in methods
        for node in ast.walk(method)
        if isinstance(node, ast.Call) and getattr(node.func, "attr", None) in _ADD_ARGUMENT
    ]
    return [
        (arg.value, _declared_nargs(call))
        for call in calls
        for arg in call.args
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str) and arg.value.startswith("-")
    ]


def _declared_nargs(call: ast.Call) -> Nargs:
    keywords = {k.arg: k.value for k in call.keywords}
    if isinstance(keywords.get("nargs"), ast.Constant):
        return keywords["nargs"].value
    action = keywords.get("action")
    return 0 if isinstance(action, ast.Constant) and action.value in _NO_VALUE_ACTIONS else None


def _beam_actions() -> dict[str, argparse.Action]:
    """Beam's flags as its option classes declare them (imports Beam: seconds)."""
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


def _takes_value(nargs: Nargs, following: str | None) -> bool:
    """Whether a flag of this ``nargs``, written without ``=``, consumes the next token."""
    if nargs == 0:
        return False
    # An optional value (nargs="?", e.g. Beam's --update_compatibility_version): not the next flag.
    return nargs != "?" or (following is not None and not following.startswith("-"))


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
    beam: dict[str, Nargs] | None = None  # Beam's flags, read at the first flag not ours
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
            n = 0 if inline or not _takes_value(own[flag].nargs, following) else 1
            mine.extend(argv[i : i + 1 + n])
        elif token.startswith("--"):
            beam = beam_flags() if beam is None else beam
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
    (``multi_processing``) get them too (S3 endpoint and credentials, say).

    With ``multi_processing``, its workers are Beam's SDK worker started through
    ``normxlogit.pipeline.sdk_worker``, which ignores Ctrl-C (the launcher stops them): the same
    subprocess environment Beam's FnApiRunner builds for that mode, given as the runner's default
    environment, with the mode set to ``in_memory`` so that Beam keeps it (it replaces the default
    environment only for ``multi_processing`` and ``multi_threading``; the worker count is read
    either way).
    """
    from apache_beam.options.pipeline_options import DirectOptions
    from apache_beam.portability.api import beam_provision_api_pb2
    from apache_beam.runners.portability.fn_api_runner import fn_runner
    from apache_beam.runners.portability.portable_runner import JobServiceHandle
    from apache_beam.transforms import environments

    from normxlogit.pipeline.sdk_worker import command_line

    encoded = JobServiceHandle.encode_pipeline_options(options.get_all_options())
    info = fn_runner.ExtendedProvisionInfo(beam_provision_api_pb2.ProvisionInfo(pipeline_options=encoded))
    direct = options.view_as(DirectOptions)
    if direct.direct_running_mode != "multi_processing":
        return fn_runner.FnApiRunner(provision_info=info)
    direct.direct_running_mode = "in_memory"
    workers = environments.SubprocessSDKEnvironment.from_command_string(command_string=command_line())
    return fn_runner.FnApiRunner(default_environment=workers, provision_info=info)
