"""cgroup v2 groups for sandbox runs: finding where this process may create them
(``detect_cgroup``), and one group per run (``RunCgroup``) in which the sandbox's processes
are counted, measured, limited where the controllers allow it, and killed all at once.

Only cgroup v2 is used. A v1 hierarchy (or a hybrid host's v1 controllers) is left alone: the
``unified`` v2 tree of a hybrid host still gives ``cgroup.kill``, ``cgroup.procs`` and CPU
accounting (``cpu.stat``), just not the memory and pids controllers."""

from __future__ import annotations

import contextlib
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from sandbox.limits import Limits

WANTED_CONTROLLERS = ("memory", "pids")


@dataclass(frozen=True)
class CgroupSupport:
    """A v2 directory this process may create child groups in, and the controllers the
    children get (a subset of memory, pids; CPU accounting needs none)."""

    parent: Path
    controllers: frozenset[str]
    can_kill: bool


def detect_cgroup(parent: Path | None = None) -> CgroupSupport | None:
    """``parent`` (default: this process's own v2 group) if child groups can be made there.

    Missing memory/pids controllers are enabled in its ``cgroup.subtree_control`` when the
    kernel allows (it refuses for a non-root group that holds processes itself: give such a
    worker a delegated, empty parent)."""
    parent = parent or own_v2_cgroup()
    if parent is None or not (parent / "cgroup.procs").exists() or not os.access(parent, os.W_OK):
        return None
    available = _words(parent / "cgroup.controllers")
    for controller in WANTED_CONTROLLERS:
        if controller in available and controller not in _words(parent / "cgroup.subtree_control"):
            with contextlib.suppress(OSError):
                (parent / "cgroup.subtree_control").write_text(f"+{controller}")
    enabled = _words(parent / "cgroup.subtree_control") & set(WANTED_CONTROLLERS)
    probe = parent / f"jct-sandbox-probe-{secrets.token_hex(4)}"
    try:
        probe.mkdir()
    except OSError:
        return None
    can_kill = (probe / "cgroup.kill").exists()
    probe.rmdir()
    return CgroupSupport(parent=parent, controllers=frozenset(enabled), can_kill=can_kill)


def own_v2_cgroup() -> Path | None:
    """This process's group in the v2 hierarchy (``0::/path`` in /proc/self/cgroup)."""
    mount = _v2_mount()
    if mount is None:
        return None
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        if line.startswith("0::"):
            return mount / line[3:].lstrip("/")
    return None


def _v2_mount() -> Path | None:
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        before, _, after = line.partition(" - ")
        if after.split(" ", 1)[0] == "cgroup2" and before.split()[3] == "/":
            return Path(before.split()[4])
    return None


def _words(path: Path) -> set[str]:
    try:
        return set(path.read_text().split())
    except OSError:
        return set()


class RunCgroup:
    """The group of one sandbox run. Created before the sandbox starts its command (bubblewrap
    waits on ``--block-fd`` while the sandbox's init is moved in), removed after."""

    def __init__(self, support: CgroupSupport, limits: Limits) -> None:
        self.support = support
        self.path = support.parent / f"jct-sandbox-{secrets.token_hex(8)}"
        self.path.mkdir()
        if "memory" in support.controllers:
            self._write("memory.max", str(int(limits.memory_bytes)))
            self._write_if_present("memory.swap.max", "0")
            self._write_if_present("memory.oom.group", "1")
        if "pids" in support.controllers:
            self._write("pids.max", str(limits.task_budget))

    def add(self, pid: int) -> None:
        self._write("cgroup.procs", str(pid))

    def pids(self) -> list[int]:
        try:
            return [int(p) for p in (self.path / "cgroup.procs").read_text().split()]
        except OSError:
            return []

    def cpu_seconds(self) -> float:
        return self._stat("cpu.stat", "usage_usec") / 1e6

    def memory_peak(self) -> int | None:
        if "memory" not in self.support.controllers:
            return None
        with contextlib.suppress(OSError, ValueError):
            return int((self.path / "memory.peak").read_text())
        return None

    def memory_current(self) -> int | None:
        if "memory" not in self.support.controllers:
            return None
        with contextlib.suppress(OSError, ValueError):
            return int((self.path / "memory.current").read_text())
        return None

    def oom_killed(self) -> bool:
        return "memory" in self.support.controllers and self._stat("memory.events", "oom_kill") > 0

    def forks_refused(self) -> bool:
        return "pids" in self.support.controllers and self._stat("pids.events", "max") > 0

    def kill(self) -> None:
        if self.support.can_kill:
            self._write("cgroup.kill", "1")
            return
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 9)

    def remove(self, timeout_s: float = 5.0) -> None:
        """Kill what is left, wait until the group is empty, remove it."""
        end = time.monotonic() + timeout_s
        while self.pids() and time.monotonic() < end:
            self.kill()
            time.sleep(0.02)
        while True:
            try:
                self.path.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:
                if time.monotonic() >= end:
                    raise
                time.sleep(0.02)

    def _stat(self, name: str, key: str) -> int:
        with contextlib.suppress(OSError):
            for line in (self.path / name).read_text().splitlines():
                field, _, value = line.partition(" ")
                if field == key:
                    return int(value)
        return 0

    def _write(self, name: str, value: str) -> None:
        (self.path / name).write_text(value)

    def _write_if_present(self, name: str, value: str) -> None:
        if (self.path / name).exists():
            self._write(name, value)
