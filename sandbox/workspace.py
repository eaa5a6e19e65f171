"""One attempt's workspace on the host: created fresh, filled with the spec's inline files,
read back afterwards (the report, files matching the declared globs) and removed.

Layout under ``root`` (which, like every directory above it, the sandbox's uid must be able to
traverse, because bubblewrap opens bind sources as that uid)::

    root/<random>/        0711, the worker's: not listable
        work/             0700, the sandbox uid's: /workspace inside
        out/              0700, the sandbox uid's: /jct/out inside ($JCT_REPORT is out/report.json)
        run/              0711, the worker's: the proxy socket, an empty file (masks)

Everything read or written here by the worker after the sandbox has run goes through
``O_NOFOLLOW`` opens one directory at a time, so nothing the command left behind (symlinks,
FIFOs, special files) can make the worker read or write outside the workspace."""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shutil
import stat
import sys
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import NamedTuple

from errors import PathEscape, SandboxError
from sandbox.paths import confined_parts, glob_matches

REPORT_NAME = "report.json"
READ_CHUNK = 1 << 16


class Collected(NamedTuple):
    relpath: str
    data: bytes
    size: int  # the file's size on disk; larger than len(data) when truncated
    truncated: bool


class Workspace:
    """Use as ``with Workspace.create(root, owner=host.sandbox_owner) as ws: …``."""

    def __init__(self, base: Path, owner: tuple[int, int] | None) -> None:
        self.base = base
        self.owner = owner
        self.path = base / "work"
        self.out = base / "out"
        self.run_dir = base / "run"
        self.empty_file = self.run_dir / "empty"
        self.checkouts: dict[str, str] = {}  # destination → commit checked out there

    @classmethod
    def create(cls, root: Path, *, owner: tuple[int, int] | None = None) -> Workspace:
        """A fresh workspace under ``root``; ``owner`` (uid, gid) is the sandbox's user."""
        root.mkdir(mode=0o711, parents=True, exist_ok=True)
        if owner is not None:
            _check_traversable(root, owner)
        base = root / secrets.token_hex(12)
        base.mkdir(mode=0o711)
        os.chmod(base, 0o711)  # mkdir's mode is filtered by the umask
        workspace = cls(base, owner)
        for directory, mode in ((workspace.path, 0o700), (workspace.out, 0o700),
                                (workspace.run_dir, 0o711)):
            directory.mkdir(mode=mode)
            os.chmod(directory, mode)
        workspace._give(workspace.path)
        workspace._give(workspace.out)
        workspace.empty_file.touch(mode=0o444)
        os.chmod(workspace.empty_file, 0o444)
        return workspace

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.remove()

    def remove(self) -> None:
        if sys.version_info >= (3, 12):
            shutil.rmtree(self.base, onexc=_make_writable_and_retry)
        else:
            shutil.rmtree(self.base, onerror=_make_writable_and_retry)

    # -- inputs --------------------------------------------------------------------------------

    def write_files(self, files: dict[str, str]) -> list[str]:
        """Write inline files (path → text) into the workspace; their relative paths."""
        written = []
        for relpath, text in files.items():
            parts = confined_parts(relpath, f"files[{relpath!r}]")
            with self._directory(parts[:-1], create=True) as dir_fd:
                try:
                    fd = os.open(parts[-1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW,
                                 0o644, dir_fd=dir_fd)
                except OSError as exc:
                    if exc.errno not in (errno.ELOOP, errno.EISDIR):
                        raise
                    raise PathEscape(f"files[{relpath!r}]: a symlink or directory is there") from exc
                with os.fdopen(fd, "wb") as f:
                    f.write(text.encode())
                    self._give_fd(f.fileno())
            written.append("/".join(parts))
        return written

    # -- outputs -------------------------------------------------------------------------------

    def read_report(self, max_bytes: int) -> Collected | None:
        """What the command wrote to ``$JCT_REPORT``, if anything (not validated here)."""
        return self.read_out(REPORT_NAME, max_bytes)

    def read_out(self, name: str, max_bytes: int) -> Collected | None:
        """A regular file the sandbox wrote in /jct/out, up to ``max_bytes``."""
        try:
            fd = os.open(self.out / name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise PathEscape(f"out/{name}: not a regular file") from exc
        return _read_regular(fd, name, max_bytes)

    def collect(self, globs: list[str], *, max_bytes_each: int, max_total: int,
                max_files: int = 100) -> list[Collected]:
        """Regular files under the workspace matching any glob, in path order, each capped at
        ``max_bytes_each`` and all together at ``max_total`` (the file that crosses it is the
        last, truncated). Symlinks, FIFOs and devices are never opened."""
        patterns = [confined_parts(g, f"artifacts[{g!r}]") for g in globs]
        found: list[Collected] = []
        budget = max_total
        for relpath, dir_fd, name in self._walk():
            if not any(glob_matches(p, tuple(relpath.split("/"))) for p in patterns):
                continue
            try:
                fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dir_fd)
            except OSError:
                continue  # a symlink (ELOOP) or gone
            item = _read_regular(fd, relpath, min(max_bytes_each, budget), raising=False)
            if item is None:
                continue
            found.append(item)
            budget -= len(item.data)
            if budget <= 0 or len(found) >= max_files:
                break
        return found

    def _walk(self) -> Iterator[tuple[str, int, str]]:
        for dirpath, dirnames, filenames, dir_fd in os.fwalk(self.path, follow_symlinks=False):
            dirnames.sort()
            prefix = os.path.relpath(dirpath, self.path)
            for name in sorted(filenames):
                yield (name if prefix == "." else f"{prefix}/{name}"), dir_fd, name

    # -- confinement ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def _directory(self, parts: tuple[str, ...], *, create: bool) -> Iterator[int]:
        """An fd on workspace/<parts>, walked one component at a time without following
        symlinks; missing directories are made (owned by the sandbox's user) when ``create``."""
        fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        try:
            for part in parts:
                try:
                    child = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        raise
                    os.mkdir(part, 0o755, dir_fd=fd)
                    child = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
                    self._give_fd(child)
                except OSError as exc:
                    raise PathEscape(f"{'/'.join(parts)}: {part!r} is not a directory") from exc
                os.close(fd)
                fd = child
            yield fd
        finally:
            os.close(fd)

    def _give(self, path: Path) -> None:
        if self.owner is not None:
            os.chown(path, *self.owner)

    def _give_fd(self, fd: int) -> None:
        if self.owner is not None:
            os.fchown(fd, *self.owner)


def _read_regular(fd: int, relpath: str, max_bytes: int, *, raising: bool = True) -> Collected | None:
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode):
            if raising:
                raise PathEscape(f"{relpath}: not a regular file")
            return None
        chunks, left = [], max(0, max_bytes)
        while left > 0:
            chunk = f.read(min(READ_CHUNK, left))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        data = b"".join(chunks)
    return Collected(relpath, data, info.st_size, info.st_size > len(data))


def _check_traversable(root: Path, owner: tuple[int, int]) -> None:
    """bubblewrap resolves the workspace as the sandbox's uid: every directory down to ``root``
    must let that uid through, or the sandbox fails later with a bare "Permission denied"."""
    uid, gid = owner
    for directory in (*reversed(root.resolve().parents), root.resolve()):
        info = directory.stat()
        if info.st_uid == uid:
            allowed = info.st_mode & stat.S_IXUSR
        elif info.st_gid == gid:
            allowed = info.st_mode & stat.S_IXGRP
        else:
            allowed = info.st_mode & stat.S_IXOTH
        if not allowed:
            raise SandboxError(f"workspace root {root}: uid {uid} cannot traverse {directory} "
                               f"(mode {stat.S_IMODE(info.st_mode):o}); use a root like "
                               "/var/tmp/jct-sandbox or give the directory o+x")


def _make_writable_and_retry(function: object, path: str, exc_info: object) -> None:
    """A directory the command made read-only (possible when the worker is not root)."""
    with contextlib.suppress(OSError):
        os.chmod(os.path.dirname(path), 0o700)
        os.chmod(path, 0o700)
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
