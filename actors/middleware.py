"""Worker-side Dramatiq middleware: trace binding, the maintenance loop, graceful shutdown."""

from __future__ import annotations

import logging
import threading
from typing import Any

import dramatiq
from dramatiq.broker import MessageProxy
from dramatiq.middleware import Middleware

import tracing
from errors import InvalidTraceId
from logging_setup import log_event
from runtime import Runtime
from services.maintenance import maintenance_pass

logger = logging.getLogger(__name__)


class TraceMiddleware(Middleware):
    """Binds ``trace_id``/``task_id`` from the message options into the context variables
    before the actor runs and clears them after, whatever the outcome. A trace id that is not
    a UUID is logged and not bound; the claimed row's trace id is bound after the claim."""

    def __init__(self) -> None:
        self._tokens = threading.local()

    def before_process_message(self, broker: dramatiq.Broker, message: MessageProxy) -> None:
        options = message.options
        task_id = options.get("task_id") or (message.args[0] if message.args else None)
        try:
            found = tracing.extract(options, tracing.MESSAGE)
            trace_id, problem = (found.trace_id if found else None), None
        except InvalidTraceId as exc:
            found, trace_id, problem = None, None, exc
        # The sender's span (the dispatch) becomes the parent of the attempt's span.
        self._tokens.value = tracing.bind_values(
            trace_id=trace_id, task_id=task_id,
            remote_parent=found.parent_span_id if found else None)
        if problem is not None:
            log_event(logger, "invalid_trace_id", f"message {message.message_id}: {problem}",
                      level=logging.WARNING, message_id=message.message_id)
        log_event(logger, "message_received", f"{message.actor_name} message {message.message_id}",
                  message_id=message.message_id, retries=options.get("retries", 0))

    def after_process_message(self, broker: dramatiq.Broker, message: MessageProxy, *,
                              result: Any = None, exception: BaseException | None = None) -> None:
        self._unbind()

    def after_skip_message(self, broker: dramatiq.Broker, message: MessageProxy) -> None:
        self._unbind()

    def _unbind(self) -> None:
        tokens = getattr(self._tokens, "value", None)
        if tokens:
            tracing.unbind(tokens)
            self._tokens.value = None


class MaintenanceMiddleware(Middleware):
    """Runs the maintenance pass (dispatcher, rescuer, uploader) every
    ``JCT_DISPATCH_INTERVAL_S`` in each worker process. Passes may overlap; the rows each one
    takes are locked and marked, so no task is dispatched, rescued or uploaded twice."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def after_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        self._thread = threading.Thread(target=self._loop, name="jct-maintenance", daemon=True)
        self._thread.start()

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        self._stop.set()

    def _loop(self) -> None:
        while not self._stop.wait(self.rt.settings.dispatch_interval_s):
            maintenance_pass(self.rt)


class GracefulShutdownMiddleware(Middleware):
    """On SIGTERM, attempts in flight get ``JCT_SHUTDOWN_GRACE_S`` to finish; then they are
    interrupted at their next interruptible point and their tasks given back (``worker_shutdown``)."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        grace = self.rt.settings.shutdown_grace_s
        log_event(logger, "worker_stopping", f"stopping intake; in-flight attempts have {grace}s",
                  grace_s=grace)
        self.rt.shutdown.begin(grace, self.rt.clock.monotonic())
