"""The dispatcher: re-sends queued tasks whose wake-up message was never sent (broker down at
enqueue) or was sent long ago and never claimed (message lost). One process at a time does it."""

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
        for task_id, trace_id, delay_s in due:
            sent += dispatch(task_id, trace_id, resent=True, delay_s=delay_s)
    if due:
        log_event(logger, "dispatcher_pass", f"re-sent {sent} of {len(due)} queued task(s)",
                  found=len(due), sent=sent)
    return sent
