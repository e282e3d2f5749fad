"""Refusals made before torch, transformers or Beam is imported: a run that cannot start says so at once.

Only what a local look can decide is refused here: a local input that matches nothing, a local
``--output`` folder that holds a finished run. Remote inputs and folders (gs://, s3://, http(s)://),
a run's ``_RUNNING`` marker and unreadable files are left to the run's own checks, which use Beam's
filesystems; those checks print the same messages.
"""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Sequence

from normxlogit.transforms.layout import MANIFEST_FILE, Manifest

# A path with a scheme (gs://, s3://, http://, hdfs://...) is not local: as Beam's FileSystems.get_scheme.
_SCHEME = re.compile(r"[a-zA-Z][-a-zA-Z0-9+.]*://")
# The characters that make an input a glob: as ``transforms/sources/expand.py``.
_GLOB_CHARS = re.compile(r"[*?\[]")


class RunRefused(ValueError):
    """The run cannot start as asked; the message says what to do. Printed as one line."""


def is_local(path: str) -> bool:
    """Whether ``path`` names a file on this machine (no ``scheme://``)."""
    return _SCHEME.match(path) is None


def finished_run_message(output: str) -> str:
    """Why ``output``, which holds a finished run, is refused without ``--overwrite``."""
    return (
        f"{output} already holds a finished run ({MANIFEST_FILE}); pass --overwrite to replace it, or "
        "choose another --output"
    )


def check_output_free(output: str, overwrite: bool) -> None:
    """Refuse a local ``output`` that holds a finished run (a valid manifest), unless ``overwrite``.

    Raises:
        RunRefused: with ``finished_run_message`` of the absolute folder, as the run's own check words it.
    """
    if overwrite or not is_local(output):
        return
    try:
        with open(os.path.join(output, MANIFEST_FILE), "rb") as fh:
            body = fh.read()
        Manifest.from_json(body)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return  # no finished run, or one the run's own check reports on
    raise RunRefused(finished_run_message(os.path.abspath(output)))


def check_local_inputs(patterns: Sequence[str]) -> None:
    """Refuse a local input path that does not exist, or a local glob that matches no file.

    Raises:
        RunRefused: naming the first such pattern, in the words of ``expand_inputs``.
    """
    for pattern in filter(is_local, patterns):
        if _GLOB_CHARS.search(pattern):
            if not _glob_may_match(pattern):
                raise RunRefused(f"{pattern}: no file matches this pattern")
        elif not os.path.exists(pattern):
            raise RunRefused(f"{pattern}: no such file or folder")


def _glob_may_match(pattern: str) -> bool:
    """False only when Beam's match of the local glob finds no file.

    Beam lists the files under the folder before the first glob character (recursively, hidden
    ones too, symbolic links to folders not followed) and matches each path against the pattern,
    where ``*`` stops at ``/``; fnmatch's ``*`` does not, so it matches at least what Beam does. The
    run matches the absolute pattern, so a relative one is made absolute here too.
    """
    if pattern.endswith("/"):
        pattern += "*"  # as Beam: a folder's files
    pattern = os.path.abspath(pattern)
    folder = os.path.dirname(_GLOB_CHARS.split(pattern, 1)[0])
    for root, _, files in os.walk(folder):
        if any(fnmatch.fnmatchcase(os.path.join(root, name), pattern) for name in files):
            return True
    return False
