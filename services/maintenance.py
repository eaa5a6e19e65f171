"""Background duties every worker process runs on a timer: re-send undelivered tasks, rescue
attempts whose worker died, upload blobs that S3 refused earlier."""

from __future__ import annotations

import logging

from config import Settings
from logging_setup import log_event
from models import transitions
from models.db import connection
from services.artifacts import upload_pending
from services.dispatcher import dispatch_due
from services.enqueue import dispatch
from tracing import bound

logger = logging.getLogger(__name__)


def rescue_lost_attempts() -> int:
    """Requeue (or fail) the tasks of attempts whose lease expired; returns how many."""
    with connection():
        rescued = transitions.rescue_expired_leases()
        for item in rescued:
            with bound(trace_id=item.trace_id, task_id=item.task_id, job_id=item.job_id):
                log_event(logger, "attempt_lost",
                          f"worker {item.worker} stopped renewing its lease; task {item.task_status}",
                          level=logging.WARNING, worker=item.worker, task_status=item.task_status)
                if item.task_status == "queued":
                    dispatch(item.task_id, item.trace_id)
    return len(rescued)


def maintenance_pass(settings: Settings) -> None:
    """One pass of every duty; each failure is logged and the others still run."""
    for name, duty in (("rescuer", rescue_lost_attempts), ("dispatcher", lambda: dispatch_due(settings)),
                       ("uploader", upload_pending)):
        try:
            duty()
        except Exception as exc:  # keep the loop alive through outages; say why
            log_event(logger, f"{name}_error", f"{name} pass failed: {exc}", level=logging.WARNING)
