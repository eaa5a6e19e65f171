"""A JCT stack for a drill (the real ``jct up``), and its processes as psutil sees them.

Process tree of ``jct up``: the supervisor (its pid is in ``run.json``) runs gunicorn and the
worker pool (``python -m actors.pool``), which forks the worker processes that run attempts. An
attempt's ``jobs.worker`` is ``<host>:<pid of that worker process>``.
"""

from __future__ import annotations

import time
from pathlib import Path

import psutil

from harness.stack import Stack, start_stack
from harness.wait import wait_until

# Fast enough for drills on a 2-core machine; every one can be overridden.
DRILL_DEFAULTS = {
    "JCT_WORKERS": "2",
    "JCT_DISPATCH_INTERVAL_S": "0.5",
    "JCT_RETRY_BACKOFF_S": "0.2",
    "JCT_LEASE_S": "2",
    "JCT_SHUTDOWN_GRACE_S": "2",
}


def start_drill_stack(home: Path, **env_overrides: str) -> Stack:
    """Start ``jct up`` in ``home`` with the drill defaults (short lease, fast passes), any of
    which may be overridden, and wait for /healthz."""
    return start_stack(home, **{**DRILL_DEFAULTS, **env_overrides})


def supervisor(stack: Stack) -> psutil.Process:
    return psutil.Process(int(stack.state["pid"]))


def _is_pool(process: psutil.Process) -> bool:
    try:
        command = process.cmdline()
    except psutil.Error:
        return False
    return "actors.pool" in command  # python -m actors.pool; its workers are forks of it


def worker_pool(stack: Stack) -> psutil.Process | None:
    """The worker pool process the supervisor runs now (None while it is being restarted)."""
    try:
        children = supervisor(stack).children()
    except psutil.Error:
        return None
    return next((child for child in children if _is_pool(child)), None)


def worker_processes(stack: Stack, *, min_age_s: float = 0.0) -> list[psutil.Process]:
    """The worker processes alive now (children of the worker pool) that have been up at least
    ``min_age_s``."""
    main = worker_pool(stack)
    if main is None:
        return []
    try:
        children = main.children()
    except psutil.Error:
        return []
    now = time.time()
    alive = []
    for child in children:
        try:
            if child.status() != psutil.STATUS_ZOMBIE and now - child.create_time() >= min_age_s:
                alive.append(child)
        except psutil.Error:
            continue
    return alive


def wait_worker_processes(stack: Stack, count: int, *, min_age_s: float = 0.0,
                          timeout: float = 60) -> list[psutil.Process]:
    return wait_until(
        lambda: (found if len(found := worker_processes(stack, min_age_s=min_age_s)) >= count
                 else None),
        timeout=timeout, interval=0.1, what=f"{count} worker process(es)")


def pid_of_worker(worker: str) -> int:
    """``jobs.worker`` is ``<host>:<pid>``."""
    return int(worker.rsplit(":", 1)[1])


def running_job(stack: Stack, task_id: str, *, timeout: float = 30) -> tuple[str, str]:
    """Wait until ``task_id`` has a running attempt; returns its ``(job_id, worker)``."""
    def probe() -> tuple[str, str] | None:
        rows = stack.query("SELECT id::text, worker FROM jobs WHERE task_id = %s"
                           " AND status = 'running'", task_id)
        return (str(rows[0][0]), str(rows[0][1])) if rows else None

    return wait_until(probe, timeout=timeout, interval=0.05, what=f"task {task_id} running")


def resume_all(stack: Stack) -> None:
    """SIGCONT every stopped process of the stack (a drill that failed mid-pause)."""
    try:
        processes = supervisor(stack).children(recursive=True)
    except psutil.Error:
        return
    for process in processes:
        try:
            if process.status() == psutil.STATUS_STOPPED:
                process.resume()
        except psutil.Error:
            continue
