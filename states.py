"""The names of JCT's states and events, as types, and the one outcome table.

A task's status, an attempt's status and every ``task_events.event`` name are stated here once;
the migrations' CHECK constraints list the same statuses (``tests/integration/test_schema.py``
holds them to it). ``attempt_outcome`` decides how a task stands after an attempt ends, for the
worker's own finish and for the rescuer alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class TaskStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


TERMINAL = frozenset({TaskStatus.DONE, TaskStatus.FAILED, TaskStatus.CANCELLED})


class AttemptStatus(StrEnum):
    """An attempt is a row of the ``jobs`` table (the contract's name for it)."""

    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    LOST = "lost"
    CANCELLED = "cancelled"


class InvocationStatus(StrEnum):
    RUNNING = "running"
    OK = "ok"
    FAILED = "failed"


class ArtifactStatus(StrEnum):
    STORED = "stored"
    PENDING = "pending"  # the blob waits on a worker's disk until the object store takes it


class Event(StrEnum):
    """``task_events.event``: the durable timeline. Log lines use the same names."""

    TASK_ENQUEUED = "task_enqueued"
    TASK_DISPATCHED = "task_dispatched"
    TASK_REDISPATCHED = "task_redispatched"
    DISPATCH_FAILED = "dispatch_failed"
    TASK_CLAIMED = "task_claimed"
    RETRY_SCHEDULED = "retry_scheduled"
    TASK_DONE = "task_done"
    TASK_FAILED = "task_failed"
    TASK_CANCELLED = "task_cancelled"
    CANCEL_REQUESTED = "cancel_requested"
    TASK_RETRIED = "task_retried"
    ATTEMPT_LOST = "attempt_lost"
    ATTEMPT_FENCED = "attempt_fenced"
    WORKER_SHUTDOWN = "worker_shutdown"
    ARTIFACT_STORED = "artifact_stored"
    ARTIFACT_PENDING = "artifact_pending"


@dataclass(frozen=True)
class Outcome:
    """How an ended attempt leaves its task: the attempt's status, the task's, and the event."""

    attempt: AttemptStatus
    task: TaskStatus
    event: Event


def attempt_outcome(*, ok: bool, retryable: bool, attempts_left: bool, cancelled: bool,
                    lost: bool = False) -> Outcome:
    """The state machine's outcome table.

    An operator's cancel wins over everything; a lost attempt (its lease ran out) is ``lost``
    whatever happens to the task; a failure is retried only if it is retryable and attempts
    are left.
    """
    failed = AttemptStatus.LOST if lost else AttemptStatus.FAILED
    if cancelled:
        return Outcome(AttemptStatus.LOST if lost else AttemptStatus.CANCELLED,
                       TaskStatus.CANCELLED, Event.TASK_CANCELLED)
    if ok:
        return Outcome(AttemptStatus.DONE, TaskStatus.DONE, Event.TASK_DONE)
    if retryable and attempts_left:
        return Outcome(failed, TaskStatus.QUEUED, Event.RETRY_SCHEDULED)
    return Outcome(failed, TaskStatus.FAILED, Event.TASK_FAILED)
