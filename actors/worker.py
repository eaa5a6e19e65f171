"""What the dramatiq worker processes load (``actors.worker:broker``): the worker's runtime —
logging first, then the configured broker with JCT's middleware — and the actor declared on it.

This module is the worker's entry point: each dramatiq worker process imports it once, after
the fork, and so builds its own runtime."""

from __future__ import annotations

from actors.middleware import GracefulShutdownMiddleware, MaintenanceMiddleware, TraceMiddleware
from actors.process_task import declare_process_task
from runtime import build_runtime

runtime = build_runtime("worker")
broker = runtime.broker.dramatiq
for middleware in (TraceMiddleware(), MaintenanceMiddleware(runtime),
                   GracefulShutdownMiddleware(runtime)):
    broker.add_middleware(middleware)
process_task = declare_process_task(runtime)

__all__ = ["broker", "process_task", "runtime"]
