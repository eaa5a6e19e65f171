"""Who holds an attempt: this process's identity, and whether a holder recorded on this machine
is still alive.

A process that crashed is not a process that stalled: the kernel knows at once that it is gone.
An attempt records its holder's host, pid, the machine's boot id (a pid means something only
within one boot) and the process's start time (pids are reused), so any worker on the same
machine can tell a dead holder from a slow one and release its attempts without waiting out the
lease. The lease stays the last line of defence, for what this cannot see: a frozen process, a
partitioned host.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Holder:
    host: str
    pid: int
    boot_id: str
    started_at: float | None  # seconds after boot, from /proc/<pid>/stat

    @property
    def name(self) -> str:
        """``host:pid``, as ``jobs.worker`` shows it."""
        return f"{self.host}:{self.pid}"


def boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def started_at(pid: int) -> float | None:
    """When process ``pid`` started, in seconds after boot; ``None`` if there is no such process
    (or only its zombie: it has exited and waits for its parent)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # After the command name (field 2, which may hold spaces and parentheses): the state
    # (field 3), then field 22, the start time in clock ticks after boot.
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19]) / _TICKS


def this_process() -> Holder:
    pid = os.getpid()
    return Holder(host=socket.gethostname(), pid=pid, boot_id=boot_id(), started_at=started_at(pid))


def is_gone(pid: int, recorded_start: float | None) -> bool:
    """Is the process that held an attempt on THIS machine (same host and boot) gone? A pid now
    used by a process that started at another time is gone too."""
    now_start = started_at(pid)
    if now_start is None:
        return True
    return recorded_start is not None and abs(now_start - recorded_start) > 0.05
