"""What one sandboxed command may use (``Limits``), and the per-process rlimits that carry those
limits into the sandbox. How each limit is enforced on this host is ``host.SandboxHost.enforcement``."""

from __future__ import annotations

import math
from dataclasses import dataclass

# RLIMIT_DATA is this many times the memory budget: a hard stop for one process that allocates
# faster than the worker samples, set above the budget so that a process stopped by it has
# always been over the budget first (its end is then reported as ``memory``, not guessed).
DATA_LIMIT_FACTOR = 2

# Tasks of the sandbox's own user that are not the command: the launcher (PID 1, one thread).
# RLIMIT_NPROC counts it too, so the command's budget is raised by this much.
SANDBOX_OWN_TASKS = 1


@dataclass(frozen=True)
class Limits:
    """Budgets for one command. Memory, processes and CPU are for the whole sandbox (every
    process the command starts); file size and open files are per process."""

    wall_s: float = 600.0
    cpu_s: float = 600.0
    memory_bytes: int = 1 << 30
    processes: int = 256
    output_bytes: int = 16 << 20
    file_size_bytes: int = 1 << 30
    open_files: int = 1024

    def __post_init__(self) -> None:
        for name in ("wall_s", "cpu_s", "memory_bytes", "processes", "output_bytes",
                     "file_size_bytes", "open_files"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise ValueError(f"Limits.{name} must be a positive number, not {value!r}")

    def rlimits(self) -> dict[str, tuple[int, int]]:
        """The rlimits the launcher sets on the command before exec, by ``resource`` name.

        CPU: the soft limit sends SIGXCPU (reported as ``cpu``), the hard one a second later
        SIGKILL. DATA (heap and private writable mappings, not shared libraries or PROT_NONE
        reservations) caps a single process at ``DATA_LIMIT_FACTOR`` times the sandbox's
        memory budget; the budget itself is held by the cgroup or the worker's watchdog. NPROC is
        counted per user *inside the sandbox's user namespace* (Linux ≥ 5.15 ucounts), so it
        bounds this sandbox alone — provided the sandbox's uid is not root (see host.py)."""
        cpu = math.ceil(self.cpu_s)
        tasks = int(self.processes) + SANDBOX_OWN_TASKS
        data = int(self.memory_bytes) * DATA_LIMIT_FACTOR
        return {
            "RLIMIT_CPU": (cpu, cpu + 1),
            "RLIMIT_DATA": (data, data),
            "RLIMIT_FSIZE": (int(self.file_size_bytes), int(self.file_size_bytes)),
            "RLIMIT_NOFILE": (int(self.open_files), int(self.open_files)),
            "RLIMIT_NPROC": (tasks, tasks),
            "RLIMIT_CORE": (0, 0),
        }

    @property
    def task_budget(self) -> int:
        """Tasks (threads count) of the sandbox's user at which forks start failing."""
        return int(self.processes) + SANDBOX_OWN_TASKS
