"""A run's output folder: claimed before the run writes anything, released when it ends.

The claim is ``OUT/_RUNNING`` (``layout.RUNNING_FILE``: pid, host, start time). On a local
disk it appears whole and only if absent (a hard link of a finished temporary file), so of two runs
started into one folder exactly one gets it and the other fails at once. Object stores have no
create-if-absent in Beam's FileSystems: there the marker is checked and then put as one object, so
two runs started within the same second can both pass; a marker left there by a killed run is
cleared with ``--overwrite`` or by deleting the object (``gcloud storage rm gs://.../_RUNNING``).

A folder that holds a marker is refused: the run is alive (same host, live pid: always refused),
or it was killed (same host, dead pid) or cannot be checked (another host, an object store):
``--overwrite`` takes the folder over, as does deleting the marker. A folder without a valid
manifest holds no finished run: its leftovers are cleared without ``--overwrite``.
"""

from __future__ import annotations

import datetime
import os
import shutil
import socket

from apache_beam.io.filesystem import BeamIOError
from apache_beam.io.filesystems import FileSystems
from apache_beam.io.localfilesystem import LocalFileSystem

from normxlogit.pipeline.startup_checks import finished_run_message
from normxlogit.transforms.atomic_files import create_exclusively
from normxlogit.transforms.layout import (
    MANIFEST_FILE,
    MANIFEST_TEMP_FILE,
    PART_FOLDERS,
    RESULT_FILES,
    RUNNING_FILE,
    Manifest,
    RunningMarker,
)
from normxlogit.transforms.writers import join


class OutputExistsError(RuntimeError):
    """The output folder cannot take this run: it holds a finished run (and --overwrite was not
    given), another run's marker, or it cannot be written. The message says what to do."""


class OutputBusyError(OutputExistsError):
    """The output folder holds another run's ``_RUNNING`` marker."""


class OutputNotWritableError(OutputExistsError):
    """The output folder (or its parent) cannot be written."""


def _is_local(path: str) -> bool:
    return isinstance(FileSystems.get_filesystem(path), LocalFileSystem)


def _read(path: str) -> bytes | None:
    """The bytes of a file, or None when there is none."""
    try:
        if not FileSystems.exists(path):
            return None
        with FileSystems.open(path) as fh:
            return fh.read()
    except FileNotFoundError:
        return None  # deleted between the two calls
    except (OSError, BeamIOError) as err:
        raise OutputNotWritableError(f"cannot read {path}: {getattr(err, 'strerror', None) or err}") from err


def _delete(path: str) -> None:
    try:
        FileSystems.delete([path])
    except BeamIOError:
        pass  # already gone


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    return True


def _check_marker(output: str, overwrite: bool) -> bool:
    """Refuse a folder another run holds; True when a marker is there that ``overwrite`` clears.

    Raises:
        OutputBusyError: the marker's run is alive here, or may be (and ``overwrite`` is not given).
    """
    marker_path = join(output, RUNNING_FILE)
    body = _read(marker_path)
    if body is None:
        return False
    marker = RunningMarker.from_json(body)
    who = marker.describe() if marker else "an unreadable marker"
    here = marker is not None and marker.host == socket.gethostname() and _is_local(output)
    if here and _pid_alive(marker.pid):
        raise OutputBusyError(
            f"{output} is being written by another run ({marker_path}: {who}); wait for it to end, "
            "or choose another --output"
        )
    if overwrite:
        return True
    if here:
        raise OutputBusyError(
            f"{output} holds an unfinished run that is no longer running ({marker_path}: {who}; killed "
            f"or crashed); pass --overwrite to clear it, or delete {marker_path}"
        )
    raise OutputBusyError(
        f"{output} may be in use by another run ({marker_path}: {who}); if that run has ended, pass "
        f"--overwrite or delete {marker_path}"
    )


def _finished_manifest(output: str) -> bool:
    """Whether ``output`` holds a valid manifest (an empty or unparsable one is an unfinished run's)."""
    body = _read(join(output, MANIFEST_FILE))
    if body is None:
        return False
    try:
        Manifest.from_json(body)
    except (ValueError, KeyError, TypeError, AttributeError):
        return False
    return True


def _write_marker(output: str, marker: RunningMarker) -> None:
    """Put the marker; on a local disk only if none is there.

    Raises:
        OutputBusyError: another run put its marker first.
        OutputNotWritableError: the folder cannot be written.
    """
    path, body = join(output, RUNNING_FILE), marker.to_json().encode()
    try:
        if _is_local(output):
            os.makedirs(output, exist_ok=True)
            create_exclusively(path, body, tmp=join(output, f".{RUNNING_FILE}.{marker.pid}.tmp"))
        else:
            with FileSystems.create(path, mime_type="application/json") as fh:
                fh.write(body)
    except FileExistsError:
        _check_marker(output, overwrite=False)  # names the run that got there first
        raise OutputBusyError(f"{output} was claimed by another run ({path}) a moment ago") from None
    except (OSError, BeamIOError) as err:
        reason = getattr(err, "strerror", None) or str(err).splitlines()[0]
        raise OutputNotWritableError(
            f"cannot write to the output folder {output}: {reason}; choose a writable --output"
        ) from err


def check_output(output: str, overwrite: bool) -> bool:
    """Refuse an output folder this run cannot take (``claim_output`` checks it again as it claims);
    True when a stale marker is there that ``overwrite`` clears.

    Raises:
        OutputExistsError: a finished run without ``overwrite``.
        OutputBusyError: another run's marker (see the module docstring).
    """
    stale = _check_marker(output, overwrite)
    if _finished_manifest(output) and not overwrite:
        raise OutputExistsError(finished_run_message(output))
    return stale


def claim_output(output: str, overwrite: bool) -> None:
    """Claim ``output`` for this run, then clear what an earlier run left there.

    A finished run (a valid manifest) is refused unless ``overwrite``; an unfinished one's leftovers
    (an empty or unparsable manifest, part files, Beam temporary files) are removed so that they
    cannot mix with this run's files.

    Raises:
        OutputExistsError: a finished run without ``overwrite``.
        OutputBusyError: another run's marker (see the module docstring).
        OutputNotWritableError: the folder cannot be written.
    """
    stale = check_output(output, overwrite)
    if stale:
        _delete(join(output, RUNNING_FILE))
    now = datetime.datetime.now(datetime.timezone.utc)
    _write_marker(output, RunningMarker(os.getpid(), socket.gethostname(), now))
    try:
        abandon_output(output)
    except BaseException:  # a Ctrl-C while clearing: the claim goes with it
        release_output(output)
        raise


def release_output(output: str) -> None:
    """Remove this process's running marker from ``output`` (another run's is left alone)."""
    path = join(output, RUNNING_FILE)
    try:
        body = _read(path)
    except OutputNotWritableError:
        return
    marker = RunningMarker.from_json(body) if body is not None else None
    if marker is not None and (marker.pid, marker.host) == (os.getpid(), socket.gethostname()):
        _delete(path)


def abandon_output(output: str) -> None:
    """After a failed run, or before a run: remove the manifest, evaluate's result files and the part
    files."""
    for name in (MANIFEST_FILE, MANIFEST_TEMP_FILE, *RESULT_FILES):
        _delete(join(output, name))
    remove_parts(output)


def remove_parts(output: str) -> None:
    """Delete the part-file folders (finalised and Beam temporary files) under ``output``.

    A trailing slash makes object stores (gs://, s3://) delete the whole prefix.
    """
    for folder in (join(output, name) for name in PART_FOLDERS):
        if _is_local(folder):
            shutil.rmtree(folder, ignore_errors=True)  # local delete of "dir/" skips subfolders
            continue
        try:
            FileSystems.delete([folder + "/"])
        except BeamIOError:
            pass  # nothing there
