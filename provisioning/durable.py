"""Durable file-system steps for provisioning: a write that is whole or absent after a power cut,
fsync of files and folders, and the lock that keeps two provisionings apart."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from appliance.paths import Paths

LOCK = ".provision.lock"


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temp file: fsync, rename, fsync the folder."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    fsync_dir(path.parent)


def fsync_tree(root: Path) -> None:
    """fsync every file and folder below ``root`` (before it is published with a rename)."""
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            fd = os.open(os.path.join(dirpath, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(Path(dirpath))




# ----------------------------------------------------------------------------- the lock

@contextlib.contextmanager
def provision_lock(paths: Paths, *, blocking: bool = True) -> Iterator[bool]:
    """One provisioning at a time; :func:`recover` leaves staging alone while one runs.

    Yields True when the lock is held (always, when ``blocking``)."""
    paths.state_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(paths.state_dir / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
            held = True
        except OSError as e:
            if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise
            held = False
        yield held
    finally:
        os.close(fd)  # closing drops the flock
