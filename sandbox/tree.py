"""The processes of one running sandbox as the host sees them, and what they use right now.

A sandbox is found by its PID namespace (every process in it, however it was forked or
re-parented), or by its cgroup when there is one; its usage is read from /proc."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class TreeUsage:
    processes: int
    tasks: int  # threads included: what RLIMIT_NPROC and pids.max count
    rss_bytes: int  # resident minus shared memory, summed (file-backed pages are shared)
    cpu_s: float  # of the live processes and of every descendant they have reaped


def namespace_pids(pid_namespace: int) -> list[int]:
    """Host PIDs of every process whose PID namespace has this inode number."""
    wanted = f"pid:[{pid_namespace}]"
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/{entry}/ns/pid") == wanted:
                found.append(int(entry))
    return found


def usage(pids: list[int]) -> TreeUsage:
    """Summed over ``pids`` (two small /proc reads each: stat and statm). Memory is resident
    minus shared pages (anonymous memory, the part a process does not share with others). CPU
    counts each process's own time plus its reaped children's (cutime/cstime), so work done by
    processes that have already exited is included as long as their parent reaped them
    (the launcher, PID 1, reaps orphans)."""
    processes = tasks = pages = ticks = 0
    for pid in pids:
        stat = _read(f"/proc/{pid}/stat")
        statm = _read(f"/proc/{pid}/statm").split()
        if not stat or len(statm) < 3:
            continue
        # Fields after the command name (which may hold spaces and parentheses): state is
        # field 3, utime stime cutime cstime fields 14-17, num_threads field 20.
        fields = stat.rpartition(")")[2].split()
        processes += 1
        tasks += int(fields[17])
        ticks += sum(int(value) for value in fields[11:15])
        pages += max(0, int(statm[1]) - int(statm[2]))
    return TreeUsage(processes=processes, tasks=tasks, rss_bytes=pages * PAGE_SIZE,
                     cpu_s=ticks / CLOCK_TICKS)


def _read(path: str) -> str:
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            return f.read()
    except OSError:
        return ""
