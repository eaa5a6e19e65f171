"""CPU time and memory of process groups, read from outside with psutil.

A group is a function returning its live processes (a process tree, a server's processes). Its
CPU time is the sum, over those processes, of their own user+system time plus the time of the
children they have already reaped, so a PostgreSQL backend that exits during a window still
counts (the postmaster reaps it). Deltas between two snapshots give the CPU a window cost.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import psutil

Group = Callable[[], list[psutil.Process]]


def tree(root: psutil.Process) -> list[psutil.Process]:
    """``root`` and all its descendants that are alive now."""
    try:
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def tree_of(pid: int) -> Group:
    def group() -> list[psutil.Process]:
        try:
            return tree(psutil.Process(pid))
        except psutil.NoSuchProcess:
            return []

    return group


def cpu_seconds(processes: Iterable[psutil.Process], *, reaped: bool = True) -> float:
    total = 0.0
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            times = process.cpu_times()
            total += times.user + times.system
            if reaped:
                total += times.children_user + times.children_system
    return total


def own_cpu_seconds() -> float:
    """This (client) process only: its reaped children are the systems it started and stopped."""
    return cpu_seconds([psutil.Process(os.getpid())], reaped=False)


def rss_bytes(processes: Iterable[psutil.Process]) -> int:
    total = 0
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            total += process.memory_info().rss
    return total


def signal_all(processes: Iterable[psutil.Process], signum: signal.Signals) -> None:
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.send_signal(signum)


# A snapshot: per group, per process (pid, start time) its CPU seconds so far.
Snapshot = dict[str, dict[tuple[int, float], float]]


def _per_process(processes: Iterable[psutil.Process]) -> dict[tuple[int, float], float]:
    taken: dict[tuple[int, float], float] = {}
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            taken[(process.pid, process.create_time())] = cpu_seconds([process])
    return taken


@dataclass
class CpuMeter:
    """CPU seconds of named groups (``client`` is always this process), per process, so a
    process that restarts between two snapshots (a shared server restarted by someone else)
    counts from its start instead of turning the delta negative."""

    groups: dict[str, Group]

    def snapshot(self) -> Snapshot:
        taken = {name: _per_process(group()) for name, group in self.groups.items()}
        taken["client"] = {(os.getpid(), 0.0): own_cpu_seconds()}
        return taken

    @staticmethod
    def ms_per_task(before: Snapshot, after: Snapshot, tasks: int) -> dict[str, float]:
        """Milliseconds of CPU per task for each group over the window ``before``→``after``
        (a process gone by ``after`` is left out; one started since counts from zero)."""
        if tasks <= 0:
            return {}
        result: dict[str, float] = {}
        for name, processes in after.items():
            earlier = before.get(name, {})
            spent = sum(cpu - earlier.get(key, 0.0) for key, cpu in processes.items())
            result[name] = round(spent * 1000 / tasks, 3)
        return result
