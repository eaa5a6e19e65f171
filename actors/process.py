"""One worker process: its runtime, the actor declared on its broker with JCT's middleware, and
a Dramatiq ``Worker`` with ``JCT_WORKER_THREADS`` threads, until SIGTERM.

The pool (``actors.pool``) forks it; it builds everything that connects (database, broker)
after the fork. Before it takes work it releases the attempts of dead worker processes on this
machine — usually the one it replaces — so their tasks run again at once.
"""

from __future__ import annotations

import logging
import signal
import threading

import dramatiq
from dramatiq import Worker

from actors.middleware import GracefulShutdownMiddleware, MaintenanceMiddleware, TraceMiddleware
from actors.process_task import declare_process_task
from logging_setup import log_event
from runtime import Runtime, build_runtime
from services.rescue import reap_dead_holders
from services.sandboxing import announce

logger = logging.getLogger("jct.worker")

# Time for the attempts in flight to end after SIGTERM, beyond their grace (JCT_SHUTDOWN_GRACE_S):
# the give-back of interrupted attempts and the consumers' own shutdown.
STOP_MARGIN_S = 15.0


def prepare(rt: Runtime) -> dramatiq.Broker:
    """The runtime's Dramatiq broker with JCT's middleware and the actor declared on it."""
    broker = rt.broker.dramatiq
    for middleware in (TraceMiddleware(), MaintenanceMiddleware(rt), GracefulShutdownMiddleware(rt)):
        broker.add_middleware(middleware)
    declare_process_task(rt)
    return broker


def serve() -> int:
    """Run this worker process until SIGTERM/SIGINT; returns its exit code."""
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    rt = build_runtime("worker")
    rt.metrics, rt.spans  # noqa: B018 - series at zero and OTel's line at boot, not at the first task
    broker = prepare(rt)
    broker.emit_after("process_boot")
    _release_predecessors(rt)
    announce(rt)  # the sandbox commands run in (or why not); dead processes' workspaces removed
    worker = Worker(broker, queues={rt.settings.queue}, worker_threads=rt.settings.worker_threads)
    worker.start()
    log_event(logger, "worker_ready", f"worker process ready: {rt.settings.worker_threads} "
              f"threads on queue {rt.settings.queue}", threads=rt.settings.worker_threads)
    while not stop.wait(1.0):  # a timed wait: the signal handler runs between waits
        pass
    worker.stop(timeout=int((rt.settings.shutdown_grace_s + STOP_MARGIN_S) * 1000))
    rt.close()
    log_event(logger, "worker_stopped", "worker process stopped")
    return 0


def _release_predecessors(rt: Runtime) -> None:
    try:
        reap_dead_holders(rt)
    except Exception as exc:  # the maintenance pass tries again; starting matters more
        log_event(logger, "reaper_error", f"reaper at start failed: {exc}", level=logging.WARNING)
