"""Metrics shared by a group of processes: gunicorn's workers, the worker pool's processes.

``prometheus_client`` in multiprocess mode keeps each process's values in files under
``PROMETHEUS_MULTIPROC_DIR``; a scrape adds them up (counters and histograms of dead
processes included, so a restarted process does not make a counter go back). The variable must
be in the environment before ``prometheus_client`` is imported, so the entry point that starts
a group sets it before any of its processes record anything:

- ``jct up`` (the supervisor): one directory for the API and the workers of this host, wiped
  when it starts; its children find the variable set and join it (a child it restarts too);
- ``gunicorn -c gunicorn_conf.py`` / ``python -m actors.pool`` started on their own (``jct api``,
  ``jct worker``, compose): each claims a directory of its own, wiped, unless the variable is
  already set (then whoever set it owns the directory and its wiping).
"""

from __future__ import annotations

import socket
from collections.abc import MutableMapping
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported for real only once the variable is set (see above)
    from prometheus_client import CollectorRegistry

ENV = "PROMETHEUS_MULTIPROC_DIR"


def group_dir(home: Path, group: str) -> Path:
    """``$JCT_HOME/metrics/<group>-<host>``: JCT_HOME may be a volume several hosts share."""
    return home / "metrics" / f"{group}-{socket.gethostname()}"


def start_fresh(env: MutableMapping[str, str], path: Path) -> Path:
    """The whole system starts here: ``path`` emptied of the last run's values and named in
    ``env`` for every process started from it."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    for stale in path.glob("*.db"):  # only prometheus_client's files: the directory may be given
        stale.unlink(missing_ok=True)
    env[ENV] = str(path)
    return path


def join_or_start(env: MutableMapping[str, str], home: Path, group: str) -> Path:
    """The directory named in ``env`` (its owner started it), else a fresh one for ``group``."""
    given = env.get(ENV)
    if given:
        Path(given).mkdir(parents=True, exist_ok=True, mode=0o700)
        return Path(given)
    return start_fresh(env, group_dir(home, group))


def mark_process_dead(pid: int, path: Path | None) -> None:
    """A process of the group exited: drop its live gauges (its counters stay summed)."""
    if path is None:
        return
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid, str(path))


def process_values(path: Path | None, own: CollectorRegistry) -> CollectorRegistry:
    """What a scrape shows of the processes' values: the group's directory added up, or
    (no directory: one process, a test) this process's ``own`` registry."""
    if path is None:
        return own
    from prometheus_client import CollectorRegistry as Registry
    from prometheus_client.multiprocess import MultiProcessCollector

    shared = Registry(auto_describe=False)
    MultiProcessCollector(shared, path=str(path))
    return shared


def exposition(*registries: CollectorRegistry) -> bytes:
    """The text exposition (format 0.0.4) of ``registries``, one after the other (their
    families do not overlap)."""
    from prometheus_client import generate_latest

    return b"".join(generate_latest(registry) for registry in registries)
