"""``JCT_HOME`` is private to the user JCT runs as: logs, blobs, the spool and ``run.json`` hold
task data and credentials. Every JCT process sets ``PRIVATE_UMASK`` at its entry point, so
whatever it (or a child: rclone, PostgreSQL) creates is owner-only, and the places that create
files name the mode too, so a process started another way (an embedding program, a test) keeps
them private as well."""

from __future__ import annotations

import os
from pathlib import Path

PRIVATE_UMASK = 0o077
DIR_MODE = 0o700
TRAVERSE_MODE = 0o711
FILE_MODE = 0o600


def restrict_umask() -> None:
    os.umask(PRIVATE_UMASK)


def private_dir(path: Path) -> Path:
    """``path`` and its missing parents created owner-only (an existing directory is left as
    it is: it may be a shared one such as ``/var/log``)."""
    missing = [p for p in (path, *path.parents) if not p.exists()]
    for directory in reversed(missing):
        directory.mkdir(mode=DIR_MODE, exist_ok=True)
    return path


def private_home(home: Path, *, others_traverse: bool = False) -> Path:
    """``JCT_HOME``, created or made owner-only (it is JCT's own directory). With
    ``others_traverse`` others may pass through it (``0o711``) but not list or read it: the
    embedded PostgreSQL run by root runs as a user of its own, which must reach ``pgdata``."""
    private_dir(home)
    if home.stat().st_uid == os.getuid():
        home.chmod(TRAVERSE_MODE if others_traverse else DIR_MODE)
    return home


def open_private(path: Path, flags: int) -> int:
    """``os.open`` creating ``path`` owner-only; a file this user already owns is made
    owner-only (an older install's log file)."""
    fd = os.open(path, flags | os.O_CREAT, FILE_MODE)
    if os.fstat(fd).st_uid == os.getuid():
        os.fchmod(fd, FILE_MODE)
    return fd


def write_private(path: Path, data: bytes) -> None:
    """Write ``path`` whole, owner-only (its directory created owner-only)."""
    private_dir(path.parent)
    fd = open_private(path, os.O_WRONLY | os.O_TRUNC)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
