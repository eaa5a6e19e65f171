"""Background duties every worker process runs on a timer: rescue attempts whose worker died,
re-send undelivered tasks, upload blobs that S3 refused earlier."""

from __future__ import annotations

import logging

from logging_setup import log_event
from models import state_machine
from runtime import Runtime
from services.artifacts import upload_pending
from services.dispatch import dispatch, dispatch_due
from states import Event, TaskStatus
from tracing import bound

logger = logging.getLogger(__name__)


def rescue_lost_attempts(rt: Runtime) -> int:
    """Requeue (or fail) the tasks of attempts whose lease expired; returns how many."""
    with rt.db.connection():
        rescued = state_machine.rescue_expired_leases(rt.db)
        for item in rescued:
            with bound(trace_id=item.trace_id, task_id=item.task_id, job_id=item.attempt_id):
                log_event(logger, str(Event.ATTEMPT_LOST),
                          f"worker {item.worker} stopped renewing its lease; task {item.task_status}",
                          level=logging.WARNING, worker=item.worker,
                          task_status=str(item.task_status))
                if item.task_status is TaskStatus.QUEUED:
                    dispatch(rt, item.task_id, item.trace_id)
    return len(rescued)


def maintenance_pass(rt: Runtime) -> None:
    """One pass of every duty; each failure is logged and the others still run."""
    for name, duty in (("rescuer", rescue_lost_attempts), ("dispatcher", dispatch_due),
                       ("uploader", upload_pending)):
        try:
            duty(rt)
        except Exception as exc:  # keep the loop alive through outages; say why
            log_event(logger, f"{name}_error", f"{name} pass failed: {exc}", level=logging.WARNING)
