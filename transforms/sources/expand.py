"""Expanding input patterns (files, folders, globs, URLs) into the list of files to read."""

from __future__ import annotations

import re
from collections.abc import Sequence

from apache_beam.io.filesystem import BeamIOError
from apache_beam.io.filesystems import FileSystems

from normxlogit.transforms.sources.base import describe_supported, format_for_path, is_supported
from normxlogit.transforms.sources.errors import InputError
from normxlogit.transforms.sources.hf_datasets import select_dataset_files
from normxlogit.transforms.sources.streams import is_http_url, require_http_support

_GLOB_CHARS = re.compile(r"[*?\[]")
# Like pyarrow.dataset: names starting with these are tool metadata (.ipynb_checkpoints, _SUCCESS, ...).
_HIDDEN_PREFIXES = (".", "_")


def expand_inputs(patterns: Sequence[str]) -> list[str]:
    """The files to read, in a deterministic order; call it at pipeline construction to fail fast.

    Each pattern is one of:
      - an http(s) URL: one file, passed through unchecked except for its suffix;
      - a glob (``*``, ``?``, ``[``; ``**`` crosses folders) on any filesystem Beam handles: the matched
        files, sorted, each of a supported type;
      - a folder: the supported files under it, recursively, sorted, skipping names that start with ``.``
        or ``_``;
      - a file of a supported type.
    In globs and folders, a ``save_to_disk`` folder yields the Arrow files its ``state.json`` lists.
    Patterns are expanded in the order given; a file reached twice is kept once, at its first place.

    Raises:
        InputError: no patterns; a pattern matches nothing or does not exist; a file type is unsupported
            (the message lists the supported ones); a URL is given but aiohttp is not installed.
    """
    if not patterns:
        raise InputError("no inputs given")
    paths = [path for pattern in patterns for path in _expand_pattern(pattern)]
    return list(dict.fromkeys(paths))


def _expand_pattern(pattern: str) -> list[str]:
    if is_http_url(pattern):
        require_http_support()
        format_for_path(pattern)
        return [pattern]
    if _GLOB_CHARS.search(pattern):
        return _expand_glob(pattern)
    return _expand_file_or_folder(pattern)


def _expand_glob(pattern: str) -> list[str]:
    matched = select_dataset_files(_matched_paths(pattern, pattern))
    if not matched:
        raise InputError(f"{pattern}: no file matches this pattern")
    unsupported = [path for path in matched if not is_supported(path)]
    if unsupported:
        raise InputError(
            f"{pattern}: matches {len(unsupported)} file(s) of unsupported type, e.g. {unsupported[0]}; "
            f"{describe_supported()}. Narrow the pattern, or give the folder to read only supported files."
        )
    return matched


def _expand_file_or_folder(path: str) -> list[str]:
    listing = _matched_paths(path.rstrip("/") + "/**", path)
    if listing:
        visible = [p for p in listing if not _is_hidden(p[len(path) :])]
        inputs = [p for p in select_dataset_files(visible) if is_supported(p)]
        if not inputs:
            raise InputError(f"{path}: the folder holds no supported input files; {describe_supported()}")
        return inputs
    if not _matched_paths(path, path):
        raise InputError(f"{path}: no such file or folder")
    format_for_path(path)
    return [path]


def _is_hidden(relative_path: str) -> bool:
    return any(part.startswith(_HIDDEN_PREFIXES) for part in relative_path.split("/") if part)


def _matched_paths(glob: str, pattern: str) -> list[str]:
    try:
        result = FileSystems.match([glob])[0]
    except (BeamIOError, ValueError) as err:  # ValueError: no filesystem for the scheme (a missing extra)
        raise InputError(f"{pattern}: cannot list: {err}") from err
    return sorted(metadata.path for metadata in result.metadata_list)
