"""The worker pool: ``python -m actors.pool`` (what ``jct worker`` runs, and ``jct up``'s
``worker`` child). It forks ``JCT_WORKERS`` worker processes (``actors.process``) from one warm
parent and keeps each one running on its own.

Why not Dramatiq's own CLI: when one of its worker processes dies it stops all the others and
exits, so every kill restarted everything, and on a busy machine the restarts cost more than
the kills. Here a dead worker process is replaced at once by a fork of this parent, which has
already imported everything (a fork is milliseconds; a fresh interpreter is seconds on a busy
machine), and the others keep working. The replacement releases the dead process's attempts
before it takes work (``services.rescue.reap_dead_holders``).

The parent holds no connection and runs no thread, so forking it is safe. Its children die with
it (SIGTERM on its death: they give their attempts back). A child that keeps dying soon after
it starts is a crash loop: the pool backs off, then stops with exit code 3.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import logging
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from config import Settings, load_settings
from errors import ConfigError
from logging_setup import configure_logging, log_event
from observability import multiprocess
from private_files import restrict_umask

logger = logging.getLogger("jct.worker_pool")

STARTUP_S = 10.0         # a child that dies sooner than this died starting up
MAX_QUICK_DEATHS = 5     # in a row, in one slot: a crash loop
EXIT_CRASH_LOOP = 3
PR_SET_PDEATHSIG = 1


@dataclass
class Slot:
    index: int
    pid: int = 0
    started: float = 0.0
    quick_deaths: int = 0
    due: float = 0.0  # when to start it again (backoff after a quick death)
    kind: str = "worker"  # or "metrics": the pool's /metrics (actors.metrics_server)


@dataclass
class Pool:
    settings: Settings
    processes: int
    metrics_dir: Path | None = None
    slots: list[Slot] = field(default_factory=list)
    stopping: bool = False

    def run(self) -> int:
        self.slots = [Slot(i) for i in range(self.processes)]
        if self.settings.worker_metrics_port and self.metrics_dir is not None:
            self.slots.append(Slot(self.processes, kind="metrics"))
        for slot in self.slots:
            self._spawn(slot)
        log_event(logger, "worker_pool_started", f"{self.processes} worker process(es) × "
                  f"{self.settings.worker_threads} threads", processes=self.processes)
        while not self.stopping:
            code = self._reap_exited()
            if code is not None:
                self.stop()
                return code
            self._start_due()
            time.sleep(0.05)
        return 0

    def stop(self) -> None:
        """SIGTERM every child, wait for their graceful stop, SIGKILL what is left."""
        self.stopping = True
        live = [slot for slot in self.slots if slot.pid]
        for slot in live:
            with contextlib.suppress(ProcessLookupError):
                os.kill(slot.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.settings.shutdown_grace_s + 20
        for slot in live:
            if not _wait(slot.pid, deadline):
                log_event(logger, "worker_killed", f"worker process {slot.pid} did not stop in "
                          "time; killing it", level=logging.WARNING, child_pid=slot.pid)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(slot.pid, signal.SIGKILL)
                _wait(slot.pid, time.monotonic() + 10)
            slot.pid = 0
        log_event(logger, "worker_pool_stopped", "all worker processes stopped")

    def _spawn(self, slot: Slot) -> None:
        pid = os.fork()
        if pid == 0:  # the child: never returns into the pool's code
            os._exit(_child() if slot.kind == "worker" else self._metrics_child())
        slot.pid, slot.started, slot.due = pid, time.monotonic(), 0.0

    def _reap_exited(self) -> int | None:
        """Restart the children that exited; an exit code when the pool must stop."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return None
            if pid == 0:
                return None
            multiprocess.mark_process_dead(pid, self.metrics_dir)
            slot = next((s for s in self.slots if s.pid == pid), None)
            if slot is not None and not self.stopping and not self._exited(slot, status):
                return EXIT_CRASH_LOOP

    def _exited(self, slot: Slot, status: int) -> bool:
        """Decide about a child that exited; ``False`` when the pool is crash-looping."""
        lived = time.monotonic() - slot.started
        killed = os.WIFSIGNALED(status)
        code = -os.WTERMSIG(status) if killed else os.WEXITSTATUS(status)
        slot.pid = 0
        slot.quick_deaths = 0 if killed or lived >= STARTUP_S else slot.quick_deaths + 1
        if slot.quick_deaths >= MAX_QUICK_DEATHS:
            log_event(logger, "worker_crash_loop", f"worker process exited with {code} "
                      f"{slot.quick_deaths} times in a row within {STARTUP_S:.0f}s of starting; "
                      "stopping", level=logging.ERROR, code=code)
            return False
        delay = min(30.0, 0.5 * 2 ** slot.quick_deaths) if slot.quick_deaths else 0.0
        slot.due = time.monotonic() + delay
        log_event(logger, "worker_restarted", f"worker process exited with {code} after "
                  f"{lived:.1f}s; starting another{f' in {delay:.1f}s' if delay else ''}",
                  level=logging.WARNING, code=code, lived_s=round(lived, 1))
        return True

    def _metrics_child(self) -> int:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        from actors.metrics_server import serve_metrics

        assert self.metrics_dir is not None
        try:
            return serve_metrics(self.settings, self.metrics_dir)
        except Exception:
            logger.exception("worker metrics endpoint failed", extra={"event": "worker_failed"})
            return 1

    def _start_due(self) -> None:
        now = time.monotonic()
        for slot in self.slots:
            if not slot.pid and now >= slot.due and not self.stopping:
                self._spawn(slot)


def _child() -> int:
    """In a forked child: die with the pool, then serve until told to stop."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    from actors.process import serve

    try:
        return serve()
    except BaseException as exc:
        logger.exception("worker process failed", extra={"event": "worker_failed"})
        return 1 if not isinstance(exc, SystemExit) else int(exc.code or 0)


def _wait(pid: int, deadline: float) -> bool:
    """Wait for child ``pid`` to exit until ``deadline``; ``True`` once it has."""
    while time.monotonic() < deadline:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return True
        if done:
            return True
        time.sleep(0.05)
    return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m actors.pool",
                                     description="Run JCT's worker processes.")
    parser.add_argument("--processes", type=int, help="worker processes (default JCT_WORKERS)")
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"jct: {exc}", file=sys.stderr)
        return 2
    restrict_umask()  # the log file and the spool under JCT_HOME are created owner-only
    configure_logging("worker", settings.log_file)
    # Before prometheus_client is imported anywhere: the worker processes share a directory
    # (the supervisor's under jct up, else this pool's own, emptied now).
    metrics_dir = multiprocess.join_or_start(os.environ, settings.home, "worker")
    # Import what every child needs once, here, so that each fork starts warm.
    import actors.process  # noqa: F401

    pool = Pool(settings, args.processes or settings.workers, metrics_dir)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: setattr(pool, "stopping", True))
    code = pool.run()
    if pool.stopping and code == 0:
        pool.stop()
    return code


if __name__ == "__main__":
    sys.exit(main())
