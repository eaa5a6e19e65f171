"""Taking back attempts whose worker is gone, so their tasks run again.

Two ways to know a worker is gone:
- its process on THIS machine no longer exists (killed, crashed, out of memory): the kernel
  knows at once, so ``reap_dead_holders`` releases its attempts at once. Every worker process
  runs it when it starts — a process started in place of a dead one releases its predecessor's
  attempts before it takes new work — and on each maintenance pass. It judges only holders on
  its own host and boot (``holder.is_gone``).
- it stopped renewing the lease (a frozen process, a partitioned host, a dead machine):
  ``rescue_lost_attempts``, the last line of defence, on each maintenance pass.
Either way the attempt is ``lost`` (fenced: a late finish of the old holder is refused) and the
task requeued in its place in line, failed, or cancelled, as ``states.attempt_outcome`` says.
"""

from __future__ import annotations

import logging

from holder import is_gone
from logging_setup import log_event
from models import state_machine
from models.state_machine import RescuedAttempt
from runtime import Runtime
from services.dispatch import dispatch
from states import Event, TaskStatus
from tracing import bound

logger = logging.getLogger(__name__)


def rescue_lost_attempts(rt: Runtime) -> int:
    """Requeue (or fail) the tasks of attempts whose lease expired; returns how many."""
    with rt.db.connection():
        rescued = state_machine.rescue_expired_leases(rt.db)
        _after(rt, rescued)
    return len(rescued)


def reap_dead_holders(rt: Runtime) -> int:
    """Release the attempts whose holder process on this machine is gone; returns how many."""
    me = rt.holder
    with rt.db.connection():
        held = state_machine.running_on(rt.db, me.host, me.boot_id)
        dead = [attempt_id for attempt_id, pid, started in held if is_gone(pid, started)]
        if not dead:
            return 0
        rescued = state_machine.rescue_attempts(rt.db, dead)
        _after(rt, rescued)
    return len(rescued)


def _after(rt: Runtime, rescued: list[RescuedAttempt]) -> None:
    """Say what happened to each, under its trace, and wake a worker for the requeued ones."""
    for item in rescued:
        rt.metrics.rescued("worker_lost" if item.reason == "worker_lost" else "holder_gone",
                           item.task_status)
        with bound(trace_id=item.trace_id, task_id=item.task_id, job_id=item.attempt_id):
            why = ("stopped renewing its lease" if item.reason == "worker_lost"
                   else "exited while running it")
            log_event(logger, str(Event.ATTEMPT_LOST), f"worker {item.worker} {why}; task "
                      f"{item.task_status}", level=logging.WARNING, worker=item.worker,
                      reason=item.reason, task_status=str(item.task_status))
            if item.task_status is TaskStatus.QUEUED:
                dispatch(rt, item.task_id, item.trace_id)
