"""Small files on a local disk that are either whole or absent: the manifest and the running marker.

Both are written to a temporary name beside their final one and flushed to disk first, so that a
full disk or a kill never leaves a short or empty file under the final name. Object stores need
none of this: they put whole objects (Beam's ``FileSystems.create`` commits on close).
"""

from __future__ import annotations

import contextlib
import errno
import os

# Filesystems without hard links (some network and FUSE mounts) answer link() with one of these.
_NO_LINKS = {errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV, errno.ENOSYS}


def _write_all(fd: int, body: bytes) -> None:
    view = memoryview(body)
    while view:
        view = view[os.write(fd, view) :]
    os.fsync(fd)  # a full disk can surface only here (delayed allocation)


def _write_temporary(tmp: str, body: bytes) -> None:
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        _write_all(fd, body)
    finally:
        os.close(fd)


def replace_atomically(path: str, body: bytes, tmp: str) -> None:
    """Write ``body`` to ``path``, replacing any file there, through the temporary name ``tmp``.

    Raises:
        OSError: the write failed; ``tmp`` is removed and ``path`` is as it was.
    """
    try:
        _write_temporary(tmp, body)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def create_exclusively(path: str, body: bytes, tmp: str) -> None:
    """Write ``body`` to ``path`` only if no file is there, through the temporary name ``tmp``.

    The whole file appears at once (a hard link of the finished temporary file); on a filesystem
    without hard links it is created exclusively and then written.

    Raises:
        FileExistsError: ``path`` exists (another process created it first).
        OSError: the write failed; nothing is left under ``path`` or ``tmp``.
    """
    try:
        _write_temporary(tmp, body)
        try:
            os.link(tmp, path)
        except OSError as err:
            if err.errno not in _NO_LINKS:
                raise
            _create_and_write(path, body)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _create_and_write(path: str, body: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        _write_all(fd, body)
    except BaseException:
        os.unlink(path)
        raise
    finally:
        os.close(fd)
