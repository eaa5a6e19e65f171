"""The dispatcher: re-sends queued tasks whose wake-up message was never sent (broker down at
enqueue) or was sent long ago and never claimed (message lost). Every worker process runs it;
the rows it takes are marked as it takes them, so no two passes send the same task."""

from __future__ import annotations

import logging

from config import Settings
from logging_setup import log_event
from models import transitions
from models.db import connection
from services.enqueue import dispatch

logger = logging.getLogger(__name__)


def dispatch_due(settings: Settings, limit: int = 100) -> int:
    """One pass; returns how many tasks were re-sent."""
    with connection():
        due = transitions.tasks_due_for_dispatch(settings.dispatch_stale_s, limit)
        sent = 0
        for index, (task_id, trace_id, delay_s) in enumerate(due):
            if not dispatch(task_id, trace_id, resent=True, delay_s=delay_s):
                # The broker is down: one dispatch_failed per pass is enough evidence.
                transitions.release_dispatch([task for task, _, _ in due[index + 1:]])
                break
            sent += 1
    if due:
        log_event(logger, "dispatcher_pass", f"re-sent {sent} of {len(due)} queued task(s)",
                  found=len(due), sent=sent)
    return sent
