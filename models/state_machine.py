"""The task state machine: every transition is one transaction that changes the row(s) and
writes its ``task_events`` row, and refuses moves the machine does not allow.

    queued ──claim──▶ running ──ok──▶ done
      ▲                 │ └─failed, attempts left──▶ queued (run_after = backoff)
      │                 ├─failed, none left────────▶ failed
      │                 └─cancel asked (wins over a retry), or rescued/given back → see below
      └──retry── failed | cancelled        queued | running ──cancel──▶ cancelled

    A running attempt can also end ``lost``: its lease expired (rescuer: the task is requeued,
    failed or cancelled) or its worker shut down (give-back: the task is requeued).

The outcome of an ended attempt is decided by ``states.attempt_outcome`` for the
worker's finish and the rescuer alike. See docs/state-machine.md.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

from errors import IllegalTransition, NotFound
from holder import Holder
from models import trail
from models.db import Database
from models.dispatch import PG_BROKER_OUTBOX_CTES, pg_broker_outbox_params
from models.events import record_event
from states import Event, TaskStatus, attempt_outcome


@dataclass(frozen=True)
class NewTask:
    """What enqueue asks to store: one validated spec under one trace id."""

    trace_id: str
    spec: dict[str, Any]
    idempotency_key: str | None = None
    request_hash: str | None = None


@dataclass(frozen=True)
class Attempt:
    """A task this worker now runs: attempt ``number`` of it, row ``id`` of ``jobs``."""

    id: str
    task_id: str
    trace_id: str
    number: int
    max_attempts: int
    spec: dict[str, Any]
    timeout_s: float | None
    queue_wait_s: float = 0.0  # from when the task was due (run_after) to this claim


@dataclass(frozen=True)
class AttemptEnd:
    """How the task stands after an attempt ended."""

    task_status: TaskStatus
    number: int
    run_after: datetime | None = None


@dataclass(frozen=True)
class RescuedAttempt:
    task_id: str
    trace_id: str
    attempt_id: str
    worker: str
    task_status: TaskStatus
    reason: str = "worker_lost"


class FenceLost(IllegalTransition):
    """This worker no longer holds the attempt (it was rescued, cancelled or finished)."""

    code = "fence_lost"


# ── enqueue ────────────────────────────────────────────────────────────────────────────────

# dispatched_at is set as the rows are created: the enqueue sends the wake-ups right after the
# commit (or, on the PostgreSQL broker, within it), so a dispatcher must not take the tasks for
# ones never sent meanwhile. A send that fails clears it (record_dispatch_failed); an enqueue
# that died before sending leaves it to go stale.
#
# The tasks, their events and (with the outbox) their wake-ups are ONE statement, run on its
# own (its own implicit transaction): one round trip instead of BEGIN, three statements and
# COMMIT. Each list travels as one JSON document: one parameter to adapt, whatever the batch.
_CREATE = """
WITH created AS (
    INSERT INTO tasks (id, trace_id, name, spec, status, priority, max_attempts, timeout_s,
                       labels, idempotency_key, request_hash, dispatched_at, dispatch_count)
    SELECT (t.doc->>'id')::uuid, (t.doc->>'trace_id')::uuid, t.doc->>'name', t.doc->'spec',
           'queued', (t.doc->>'priority')::int, (t.doc->>'max_attempts')::int,
           (t.doc->>'timeout_s')::float8, t.doc->'labels', t.doc->>'idempotency_key',
           t.doc->>'request_hash', now(), %(sent)s
      FROM jsonb_array_elements(%(tasks)s) WITH ORDINALITY AS t(doc, n)
     ORDER BY t.n
    RETURNING id),
events AS (
    INSERT INTO task_events (task_id, trace_id, event, attrs)
    SELECT (e.doc->>0)::uuid, (e.doc->>1)::uuid, e.doc->>2, e.doc->3
      FROM jsonb_array_elements(%(events)s) WITH ORDINALITY AS e(doc, n)
     ORDER BY e.n){outbox}
SELECT (SELECT count(*) FROM created){woken}
"""
_CREATE_ALONE = _CREATE.format(outbox="", woken="")
_CREATE_WITH_OUTBOX = _CREATE.format(outbox=",\n" + PG_BROKER_OUTBOX_CTES,
                                     woken=", (SELECT count(*) FROM notified)")


@dataclass(frozen=True)
class Outbox:
    """Wake-up messages written in the enqueue's own transaction (the PostgreSQL broker keeps
    its messages in this database): a committed task has its message, a rolled-back one none,
    and no send can fail after the commit. ``messages`` gives ``(message_id, message)`` for
    the new ``(task_id, trace_id)``; ``broker`` names it on the ``task_dispatched`` events."""

    queue: str
    messages: Callable[[list[tuple[str, str]]], list[tuple[str, dict[str, Any]]]]
    broker: str


def create_tasks(db: Database, new_tasks: list[NewTask], outbox: Outbox | None = None) -> list[str]:
    """Insert queued tasks and their ``task_enqueued`` events in ONE statement (with their
    wake-up messages and ``task_dispatched`` events when an ``outbox`` is given)."""
    ids = [str(uuid.uuid4()) for _ in new_tasks]
    tasks = [{"id": task_id, "trace_id": new.trace_id, "name": new.spec.get("name"),
              "spec": new.spec, "priority": new.spec.get("priority", 0),
              "max_attempts": new.spec.get("max_attempts", 1),
              "timeout_s": new.spec.get("timeout_s"), "labels": new.spec.get("labels", {}),
              "idempotency_key": new.idempotency_key, "request_hash": new.request_hash}
             for task_id, new in zip(ids, new_tasks, strict=True)]
    events = [(task_id, new.trace_id, str(Event.TASK_ENQUEUED),
               {"name": new.spec.get("name"), "steps": [step["action"] for step in new.spec["steps"]]})
              for task_id, new in zip(ids, new_tasks, strict=True)]
    params: dict[str, Any] = {"sent": 1 if outbox else 0, "tasks": Jsonb(tasks)}
    if outbox is None:
        db.execute(_CREATE_ALONE, {**params, "events": Jsonb(events)})
        return ids
    messages = outbox.messages([(task_id, new.trace_id)
                                for task_id, new in zip(ids, new_tasks, strict=True)])
    events += [(task_id, new.trace_id, str(Event.TASK_DISPATCHED),
                {"broker": outbox.broker, "message_id": message_id})
               for task_id, new, (message_id, _) in zip(ids, new_tasks, messages, strict=True)]
    db.execute(_CREATE_WITH_OUTBOX, {**params, "events": Jsonb(events),
                                     **pg_broker_outbox_params(outbox.queue, messages)})
    return ids


# ── claim ──────────────────────────────────────────────────────────────────────────────────

_CLAIM = """
UPDATE tasks SET status = 'running', attempts = attempts + 1, current_job_id = %(attempt_id)s,
       started_at = coalesce(started_at, now()), updated_at = now(), error = NULL,
       dispatch_count = 0
 WHERE id = (SELECT id FROM tasks
              WHERE status = 'queued' AND run_after <= now() AND NOT cancel_requested
                AND (%(task_id)s::uuid IS NULL OR id = %(task_id)s::uuid)
              ORDER BY priority DESC, run_after
              LIMIT 1 FOR NO KEY UPDATE {wait})
RETURNING id, trace_id, attempts, max_attempts, spec, timeout_s,
          GREATEST(0, EXTRACT(EPOCH FROM now() - run_after))::float8 AS waited_s
"""
# The claim, the attempt row and its event in ONE statement (one round trip, its own commit):
# the attempt row and the event are written only if a task was claimed.
_CLAIM_AND_START = """
WITH claimed AS ({claim}),
started AS (
    INSERT INTO jobs (id, task_id, trace_id, attempt, status, worker, worker_host, worker_pid,
                      worker_boot_id, worker_started_at, lease_expires_at, heartbeat_at)
    SELECT %(attempt_id)s, id, trace_id, attempts, 'running', %(worker)s, %(host)s, %(pid)s,
           %(boot_id)s, %(started_at)s, now() + make_interval(secs => %(lease_s)s), now()
      FROM claimed),
event AS (
    INSERT INTO task_events (task_id, trace_id, event, attrs)
    SELECT id, trace_id, 'task_claimed',
           jsonb_build_object('job_id', %(attempt_id)s::text, 'attempt', attempts,
                              'worker', %(worker)s::text)
      FROM claimed)
SELECT id, trace_id, attempts, max_attempts, spec, timeout_s, waited_s FROM claimed
"""
# Claiming the next task skips rows other workers hold. Claiming a named task (a delivered
# message) waits for short-lived locks instead (the API marking it dispatched, an operator's
# cancel): skipping would ack the message and leave the task to the dispatcher. After the wait
# PostgreSQL re-checks the WHERE clause, so a duplicate delivery still finds nothing.
_CLAIM_NEXT = _CLAIM_AND_START.format(claim=_CLAIM.format(wait="SKIP LOCKED"))
_CLAIM_NAMED = _CLAIM_AND_START.format(claim=_CLAIM.format(wait=""))


def claim_task(db: Database, worker: str | Holder, lease_s: float,
               task_id: str | None = None) -> Attempt | None:
    """Claim one due queued task (that one, or the next) and start its attempt, held by
    ``worker`` (a ``Holder``, or just a name).

    ``None`` is a normal outcome: a duplicate delivery, a task not yet due, or (claiming the
    next) every due task is held by another worker.
    """
    holder = worker if isinstance(worker, Holder) else None
    params = {"attempt_id": str(uuid.uuid4()), "task_id": task_id, "lease_s": lease_s,
              "worker": holder.name if holder else str(worker),
              "host": holder.host if holder else None, "pid": holder.pid if holder else None,
              "boot_id": holder.boot_id if holder else None,
              "started_at": holder.started_at if holder else None}
    if task_id is None:
        row = db.one(_CLAIM_NEXT, params)
    else:
        with db.transaction():  # a transaction of its own, for its lock timeout
            db.execute("SET LOCAL lock_timeout = '10s'")
            row = db.one(_CLAIM_NAMED, params)
    if row is None:
        return None
    claimed_id, trace_id, number, max_attempts, spec, timeout_s, waited_s = row
    return Attempt(id=str(params["attempt_id"]), task_id=str(claimed_id), trace_id=str(trace_id),
                   number=number, max_attempts=max_attempts, spec=spec, timeout_s=timeout_s,
                   queue_wait_s=float(waited_s))


# ── an attempt ends ────────────────────────────────────────────────────────────────────────

_END_ATTEMPT = """
UPDATE jobs SET status = %(status)s, error = %(error)s, finished_at = now(), updated_at = now()
 WHERE id = %(attempt_id)s AND status = 'running'
"""

# The attempt's end, its trail and the task's new state in ONE statement. Fenced: ``held`` has a
# row only while this attempt still holds the task (and the operator's cancel flag is as the
# outcome assumed); without it nothing is written. The last row says what it found.
_FINISH = """
WITH held AS (
    SELECT id FROM tasks
     WHERE id = %(task_id)s AND status = 'running' AND current_job_id = %(attempt_id)s
       AND cancel_requested = %(flag)s
       FOR NO KEY UPDATE),
ended AS (
    UPDATE jobs SET status = %(attempt_status)s, error = %(error)s, finished_at = now(),
           updated_at = now()
     WHERE id = %(attempt_id)s AND status = 'running' AND EXISTS (SELECT FROM held)
    RETURNING id),
settled AS (
    UPDATE tasks SET status = %(status)s, error = %(error)s, updated_at = now(),
           current_job_id = NULL, finished_at = CASE WHEN %(terminal)s THEN now() END,
           run_after = CASE WHEN %(requeue)s THEN now() + make_interval(secs => %(delay_s)s)
                            ELSE run_after END,
           dispatched_at = CASE WHEN %(requeue)s THEN now() ELSE dispatched_at END
     WHERE id = %(task_id)s AND EXISTS (SELECT FROM ended)
    RETURNING run_after),
{trail}
SELECT (SELECT run_after FROM settled), EXISTS (SELECT FROM settled),
       (SELECT cancel_requested FROM tasks WHERE id = %(task_id)s),
       EXISTS (SELECT FROM jobs WHERE id = %(attempt_id)s AND status = 'running')
"""
_FINISH = _FINISH.format(trail=trail.ctes("settled"))


def finish_attempt(db: Database, attempt: Attempt, *, error: str | None, retryable: bool,
                   retry_delay_s: float, cancelled: bool = False,
                   left: trail.Trail = trail.NOTHING) -> AttemptEnd:
    """End the attempt — ``done``, ``failed``, ``cancelled`` or back to ``queued`` for a retry —
    writing what it ``left`` (its steps, its log) in the same statement.

    Fenced: it only applies while this attempt still holds the task, so a worker that wakes up
    after its attempt was rescued cannot overwrite the task (raises ``FenceLost``; its trail
    is then written by ``record_trail``). An operator's cancel wins over a retry: the outcome is
    decided with the task's cancel flag, and decided again if the flag changed meanwhile.
    """
    flag = False
    for _ in range(3):
        outcome = attempt_outcome(
            ok=error is None, retryable=retryable, attempts_left=attempt.number < attempt.max_attempts,
            cancelled=cancelled or (flag and error is not None))
        requeue = outcome.task is TaskStatus.QUEUED
        attrs: dict[str, Any] = {"job_id": attempt.id, "attempt": attempt.number}
        if error:
            attrs["error"] = error
        row = db.one(_FINISH, {
            "task_id": attempt.task_id, "attempt_id": attempt.id, "trace_id": attempt.trace_id,
            "flag": flag, "attempt_status": str(outcome.attempt), "status": str(outcome.task),
            "error": error, "terminal": outcome.task.terminal, "requeue": requeue,
            "delay_s": retry_delay_s, **trail.params(left, [(outcome.event, attrs)])})
        assert row is not None  # the final SELECT always answers one row
        run_after, settled, _, still_running = row
        if settled:
            return AttemptEnd(task_status=outcome.task, number=attempt.number,
                              run_after=run_after if requeue else None)
        # The statement's own reads see the rows as they were before it waited for the task's
        # lock, so a cancel that committed during that wait is read again, in a new statement.
        flag_now = _cancel_flag_if_held(db, attempt) if still_running else None
        if flag_now is None or flag_now == flag:
            raise FenceLost(f"attempt {attempt.id} no longer holds task {attempt.task_id}")
        flag = flag_now  # the operator's cancel came in between: decide again
    raise FenceLost(f"attempt {attempt.id} could not settle task {attempt.task_id}")


def _cancel_flag_if_held(db: Database, attempt: Attempt) -> bool | None:
    """The task's cancel flag now, while this attempt still holds the task; else ``None``."""
    row = db.one("SELECT cancel_requested FROM tasks WHERE id = %(task_id)s"
                 " AND status = 'running' AND current_job_id = %(attempt_id)s",
                 {"task_id": attempt.task_id, "attempt_id": attempt.id})
    return None if row is None else bool(row[0])


# A task given back or rescued keeps its place in line (its run_after, already past): the next
# claim anywhere takes it, ahead of tasks that came later.
_GIVE_BACK = """
WITH ended AS (
    UPDATE jobs SET status = 'lost', error = %(reason)s, finished_at = now(), updated_at = now()
     WHERE id = %(attempt_id)s AND status = 'running'
    RETURNING id),
requeued AS (
    UPDATE tasks SET status = CASE WHEN cancel_requested THEN 'cancelled' ELSE 'queued' END,
           current_job_id = NULL, run_after = LEAST(run_after, now()), dispatched_at = NULL,
           finished_at = CASE WHEN cancel_requested THEN now() ELSE finished_at END,
           error = CASE WHEN cancel_requested THEN 'cancelled by operator' ELSE error END,
           updated_at = now()
     WHERE id = %(task_id)s AND current_job_id = %(attempt_id)s AND EXISTS (SELECT FROM ended)
    RETURNING id, status),
cancelled AS (
    INSERT INTO task_events (task_id, trace_id, event, attrs)
    SELECT id, %(trace_id)s, 'task_cancelled',
           jsonb_build_object('job_id', %(attempt_id)s::text, 'interrupted_by', %(reason)s)
      FROM requeued WHERE status = 'cancelled'),
{trail}
SELECT EXISTS (SELECT FROM ended), (SELECT status FROM requeued)
"""
_GIVE_BACK = _GIVE_BACK.format(trail=trail.ctes("ended"))


def give_back_attempt(db: Database, attempt: Attempt, reason: Event,
                      left: trail.Trail = trail.NOTHING) -> TaskStatus:
    """This worker stops (shutdown) before the attempt ended: the attempt is ``lost`` with
    ``reason`` and the task goes back to ``queued`` for another worker, at once, with what the
    attempt ``left`` — unless an operator asked to cancel it meanwhile: then it is
    ``cancelled`` (a queued task with the flag set would never be claimed). Returns the task's
    new status. Fenced."""
    row = db.one(_GIVE_BACK, {
        "task_id": attempt.task_id, "attempt_id": attempt.id, "trace_id": attempt.trace_id,
        "reason": str(reason),
        **trail.params(left, [(reason, {"job_id": attempt.id, "attempt": attempt.number})])})
    if not (row and row[0] and row[1]):
        raise FenceLost(f"attempt {attempt.id} no longer holds task {attempt.task_id}")
    return TaskStatus(row[1])


_RECORD_TRAIL = """
WITH attempt AS (SELECT id FROM jobs WHERE id = %(attempt_id)s),
{trail}
SELECT 1
"""
_RECORD_TRAIL = _RECORD_TRAIL.format(trail=trail.ctes("attempt"))


def record_trail(db: Database, attempt: Attempt, left: trail.Trail, worker: str,
                 what: str) -> None:
    """A late finish (or give-back, or a lease found lost) was refused: the attempt had been
    taken from this worker. What it did is still its trail — its steps, its log — and the
    refusal goes on the task's timeline (``attempt_fenced``)."""
    db.execute(_RECORD_TRAIL, {
        "task_id": attempt.task_id, "attempt_id": attempt.id, "trace_id": attempt.trace_id,
        **trail.params(left, [(Event.ATTEMPT_FENCED, {
            "job_id": attempt.id, "attempt": attempt.number, "worker": worker,
            "refused": what})])})


# ── the rescuer ────────────────────────────────────────────────────────────────────────────

_HELD = """
SELECT j.id, j.task_id, j.trace_id, j.attempt, j.worker, t.max_attempts, t.cancel_requested
  FROM jobs j JOIN tasks t ON t.id = j.task_id AND t.current_job_id = j.id
 WHERE j.status = 'running' AND t.status = 'running' AND {which}
 ORDER BY j.lease_expires_at LIMIT %(limit)s
   FOR UPDATE OF j, t SKIP LOCKED
"""
_EXPIRED = _HELD.format(which="j.lease_expires_at < now()")
_CHOSEN = _HELD.format(which="j.id = ANY(%(ids)b::uuid[])")

_RESCUE_TASK = """
UPDATE tasks SET status = %(status)s, current_job_id = NULL, updated_at = now(),
       error = CASE WHEN %(requeue)s THEN error ELSE %(error)s END,
       finished_at = CASE WHEN %(requeue)s THEN NULL ELSE now() END,
       run_after = LEAST(run_after, now()), dispatched_at = NULL
 WHERE id = %(task_id)s
"""

# A step whose row said ``running`` when its attempt was taken away will never be completed by
# its worker: it ends ``failed`` with the attempt's reason, so no row claims to run for ever.
_END_STEPS = """
UPDATE action_invocations SET status = 'failed', completed_at = now(),
       error = %(error)s
 WHERE job_id = %(attempt_id)s AND status = 'running'
"""

# Why an attempt was taken from its worker: the reason (attempt error and event attribute) and
# how the task's error reads when it has no attempt left.
LEASE_EXPIRED = ("worker_lost", "worker {worker} stopped renewing its lease")
PROCESS_GONE = ("worker_died", "worker {worker} exited while running it")


def rescue_expired_leases(db: Database, limit: int = 100) -> list[RescuedAttempt]:
    """Attempts whose worker stopped renewing the lease: mark them ``lost`` (``worker_lost``)
    and requeue the task if attempts remain, else fail it with that reason."""
    return _rescue(db, _EXPIRED, {"limit": limit}, LEASE_EXPIRED)


def rescue_attempts(db: Database, attempt_ids: list[str]) -> list[RescuedAttempt]:
    """These running attempts' processes are gone (``worker_died``): the same as an expired
    lease, at once. Fenced: an attempt that already ended is left alone."""
    return _rescue(db, _CHOSEN, {"ids": attempt_ids, "limit": len(attempt_ids)}, PROCESS_GONE)


def _rescue(db: Database, select: str, params: dict[str, Any],
            why: tuple[str, str]) -> list[RescuedAttempt]:
    reason, explanation = why
    rescued: list[RescuedAttempt] = []
    with db.transaction():
        for row in db.all(select, params):
            attempt_id, task_id, trace_id = str(row[0]), str(row[1]), str(row[2])
            number, worker, max_attempts, cancel = row[3:]
            outcome = attempt_outcome(ok=False, retryable=True, attempts_left=number < max_attempts,
                                      cancelled=cancel, lost=True)
            db.execute(_END_ATTEMPT, {"status": str(outcome.attempt), "error": reason,
                                      "attempt_id": attempt_id})
            db.execute(_END_STEPS, {"attempt_id": attempt_id, "error": f"{reason}: the attempt "
                                    "was taken from its worker while this step ran"})
            db.execute(_RESCUE_TASK, {"status": str(outcome.task), "task_id": task_id,
                                      "requeue": outcome.task is TaskStatus.QUEUED,
                                      "error": f"{reason}: {explanation.format(worker=worker)}"})
            record_event(db, task_id, trace_id, Event.ATTEMPT_LOST, job_id=attempt_id,
                         attempt=number, worker=worker, reason=reason)
            record_event(db, task_id, trace_id, outcome.event, job_id=attempt_id, attempt=number,
                         error=reason)
            rescued.append(RescuedAttempt(task_id, trace_id, attempt_id, worker, outcome.task,
                                          reason))
    return rescued


_RUNNING_ON = """
SELECT id, worker_pid, worker_started_at FROM jobs
 WHERE status = 'running' AND worker_host = %(host)s AND worker_boot_id = %(boot_id)s
   AND worker_pid IS NOT NULL
"""


def running_on(db: Database, host: str, boot_id: str) -> list[tuple[str, int, float | None]]:
    """``(attempt id, pid, process start)`` of the running attempts held on this machine."""
    return [(str(r[0]), int(r[1]), r[2]) for r in db.all(_RUNNING_ON, {"host": host,
                                                                       "boot_id": boot_id})]


# ── the operator ───────────────────────────────────────────────────────────────────────────

def cancel_task(db: Database, task_id: str, actor: str) -> TaskStatus:
    """Operator cancel: a queued task is cancelled now; a running one is asked to stop.
    Returns the task's status after (``cancelled`` or ``running``)."""
    with db.transaction():
        status, trace_id = _lock_task(db, task_id)
        if status is TaskStatus.QUEUED:
            db.execute("UPDATE tasks SET status = 'cancelled', finished_at = now(),"
                       " updated_at = now(), error = 'cancelled by operator' WHERE id = %(id)s",
                       {"id": task_id})
            record_event(db, task_id, trace_id, Event.TASK_CANCELLED, by=actor)
            return TaskStatus.CANCELLED
        if status is TaskStatus.RUNNING:
            db.execute("UPDATE tasks SET cancel_requested = true, updated_at = now()"
                       " WHERE id = %(id)s", {"id": task_id})
            record_event(db, task_id, trace_id, Event.CANCEL_REQUESTED, by=actor)
            return TaskStatus.RUNNING
    raise IllegalTransition(f"a {status} task cannot be cancelled", detail={"status": str(status)})


_RETRY = """
UPDATE tasks SET status = 'queued', cancel_requested = false, error = NULL, finished_at = NULL,
       run_after = now(), dispatched_at = NULL, dispatch_count = 0,
       max_attempts = GREATEST(max_attempts, attempts + 1), updated_at = now()
 WHERE id = %(id)s
"""


def retry_task(db: Database, task_id: str, actor: str) -> TaskStatus:
    """Operator retry: a failed or cancelled task is queued again, same task and trace."""
    with db.transaction():
        status, trace_id = _lock_task(db, task_id)
        if status not in (TaskStatus.FAILED, TaskStatus.CANCELLED):
            raise IllegalTransition(f"a {status} task cannot be retried",
                                    detail={"status": str(status)})
        db.execute(_RETRY, {"id": task_id})
        record_event(db, task_id, trace_id, Event.TASK_RETRIED, by=actor)
    return TaskStatus.QUEUED


def _lock_task(db: Database, task_id: str) -> tuple[TaskStatus, str]:
    row = db.one("SELECT status, trace_id FROM tasks WHERE id = %(id)s FOR UPDATE", {"id": task_id})
    if row is None:
        raise NotFound(f"no task {task_id}")
    return TaskStatus(row[0]), str(row[1])
