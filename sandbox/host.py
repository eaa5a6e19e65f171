"""How this host runs sandboxes: the bubblewrap and Python binaries, the unprivileged user
the sandbox runs as, the cgroup parent and the /etc masks. Found once when the worker starts
(``SandboxHost.detect``, which also proves bubblewrap works here) and passed to every run;
``enforcement()`` says, limit by limit, what holds it on this host.

Why the sandbox runs as an unprivileged uid when the worker is root: RLIMIT_NPROC is not
enforced for uid 0 (the kernel skips the check for the init user), and inside a user namespace
that bubblewrap creates as root the sandbox's uid maps to 0 outside. Started as another uid,
bubblewrap maps that uid instead, and since Linux 5.15 the count RLIMIT_NPROC is checked
against is kept per user namespace, so the limit bounds this sandbox alone — other sandboxes
or host processes of the same uid do not eat its budget. A dedicated uid (not shared with
other daemons) is better than the default ``nobody``: processes of the same uid on the host
can read a running command's environment in /proc."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from errors import SandboxError
from sandbox.bwrap import Mask, SystemLink, host_masks, host_system
from sandbox.cgroup import CgroupSupport, detect_cgroup
from sandbox.limits import DATA_LIMIT_FACTOR

NOBODY = (65534, 65534)
PYTHON_CANDIDATES = ("/usr/bin/python3", "/usr/local/bin/python3")
PROBE_TIMEOUT_S = 30


@dataclass(frozen=True)
class SandboxHost:
    bwrap: str
    python: str
    run_as: tuple[int, int] | None  # (uid, gid) bubblewrap is started as; None: the worker's own
    cgroup: CgroupSupport | None
    system: tuple[SystemLink, ...]
    masks: tuple[Mask, ...]
    share_host_network: bool = False
    tick_s: float = 0.05  # how often a run checks its stop probe, deadline and the tree's use
    processes_pinned_ticks: int = 3  # ticks at the task limit before a run is killed for it
    notes: tuple[str, ...] = field(default_factory=tuple)

    @classmethod
    def detect(cls, *, run_as: tuple[int, int] | str | None = "auto", use_cgroup: bool = True,
               cgroup_parent: Path | None = None, extra_masks: tuple[str, ...] = (),
               bwrap: str | None = None, python: str | None = None,
               share_host_network: bool = False, probe: bool = True) -> SandboxHost:
        """``run_as="auto"``: ``nobody`` when the worker is root, else the worker's own uid.
        Raises ``SandboxError`` naming what is missing when sandboxes cannot run here."""
        found_bwrap = bwrap or shutil.which("bwrap")
        if not found_bwrap:
            raise SandboxError("bubblewrap (bwrap) is not installed: apt-get install bubblewrap")
        found_python = python or next((p for p in PYTHON_CANDIDATES if os.access(p, os.X_OK)), None)
        if not found_python or not found_python.startswith("/usr/"):
            raise SandboxError("the sandbox needs a Python 3 under /usr (the only host tree it "
                               "sees): install python3")
        identity = _identity(run_as)
        notes = []
        if identity is None and os.geteuid() == 0:
            notes.append("sandbox runs as root: RLIMIT_NPROC is not enforced")
        host = cls(bwrap=found_bwrap, python=found_python, run_as=identity,
                   cgroup=detect_cgroup(cgroup_parent) if use_cgroup else None,
                   system=tuple(host_system()), masks=tuple(host_masks(extra_masks)),
                   share_host_network=share_host_network, notes=tuple(notes))
        if probe:
            host.probe()
        return host

    @property
    def owner(self) -> tuple[int, int] | None:
        """Who must own the workspace so the sandbox can write it (None: the worker)."""
        return self.run_as

    def probe(self) -> None:
        """Start a trivial sandbox: user namespaces allowed, bubblewrap usable as ``run_as``."""
        argv = [self.bwrap, "--unshare-all", "--unshare-user", "--disable-userns",
                "--die-with-parent", "--ro-bind", "/usr", "/usr",
                *(a for link in self.system for a in (
                    ("--symlink", link.target, f"/{link.name}") if link.target
                    else ("--ro-bind", f"/{link.name}", f"/{link.name}"))),
                "--", self.python, "-I", "-S", "-c", "pass"]
        try:
            user, group, extra_groups = popen_identity(self.run_as)
            done = subprocess.run(argv, capture_output=True, timeout=PROBE_TIMEOUT_S, check=False,
                                  env={"PATH": "/usr/bin:/bin"}, user=user, group=group,
                                  extra_groups=extra_groups)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise SandboxError(f"bubblewrap cannot start here: {exc}") from exc
        if done.returncode != 0:
            raise SandboxError("bubblewrap cannot start here (are unprivileged user namespaces "
                               f"allowed?): {done.stderr.decode(errors='replace').strip()}")

    def enforcement(self) -> dict[str, str]:
        """Limit (and isolation property) → the mechanism that holds it on this host."""
        controllers = self.cgroup.controllers if self.cgroup else frozenset()
        uid = self.run_as[0] if self.run_as else os.geteuid()
        tree = "cgroup" if self.cgroup else "PID namespace"
        memory = ("cgroup memory.max (the kernel OOM-kills the whole group)" if "memory" in controllers
                  else f"a watchdog on the summed resident memory of the {tree}'s processes "
                       f"(sampled every {self.tick_s}s or slower with many processes) + "
                       f"RLIMIT_DATA at {DATA_LIMIT_FACTOR}x the budget per process")
        processes = (f"RLIMIT_NPROC in the sandbox's user namespace (uid {uid})"
                     if uid != 0 else "NOT enforced (sandbox uid is 0)")
        if "pids" in controllers:
            processes += " + cgroup pids.max"
        else:
            processes += f"; killed after {self.processes_pinned_ticks} samples at the limit"
        kill = "SIGKILL to the sandbox's PID-namespace init (takes every process in it)"
        if self.cgroup and self.cgroup.can_kill:
            kill += " + cgroup.kill"
        return {
            "wall_s": f"worker deadline (checked every {self.tick_s}s), then the kill below",
            "cpu_s": "RLIMIT_CPU per process (SIGXCPU) + a watchdog on the whole sandbox's CPU "
                     f"({'cgroup cpu.stat' if self.cgroup else '/proc utime+stime+cutime+cstime'})",
            "memory_bytes": memory,
            "processes": processes,
            "output_bytes": "worker reads both pipes and kills the sandbox past the cap",
            "file_size_bytes": "RLIMIT_FSIZE per process (SIGXFSZ); /tmp is a tmpfs of memory_bytes",
            "open_files": "RLIMIT_NOFILE per process",
            "kill": kill,
            "network": ("host network namespace: the allowlist is NOT enforced"
                        if self.share_host_network else
                        "own network namespace (loopback only); network=true goes through the "
                        "worker's proxy, which asks allow(host, port) for every connection"),
            "identity": f"uid {uid} inside a user namespace, no capabilities, no nested user namespaces",
        }


def _identity(run_as: tuple[int, int] | str | None) -> tuple[int, int] | None:
    if run_as == "auto":
        return NOBODY if os.geteuid() == 0 else None
    if isinstance(run_as, str):
        raise SandboxError(f"run_as: {run_as!r} is not (uid, gid), None or 'auto'")
    if run_as is None:
        return None
    if run_as[0] == 0:
        raise SandboxError("run_as: the sandbox must not run as uid 0 (RLIMIT_NPROC would not hold)")
    if os.geteuid() != 0 and run_as[0] != os.geteuid():
        raise SandboxError(f"run_as: only root can start the sandbox as uid {run_as[0]}")
    return run_as


def popen_identity(run_as: tuple[int, int] | None) -> tuple[int | None, int | None, list[int] | None]:
    """Popen's ``user``, ``group``, ``extra_groups`` that start bubblewrap as ``run_as``
    (no supplementary groups), or the worker's own identity."""
    if run_as is None or os.geteuid() != 0:
        return None, None, None
    return run_as[0], run_as[1], []
