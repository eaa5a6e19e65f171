"""The task state machine: every transition is one transaction that changes the row(s) and
writes its ``task_events`` row, and refuses moves the machine does not allow.

    queued ──claim──▶ running ──ok──▶ done
      ▲                 │ └─failed, attempts left──▶ queued (run_after = backoff)
      │                 ├─failed, none left────────▶ failed
      │                 └─cancel asked (wins over a retry), or rescued/given back → see below
      └──retry── failed | cancelled        queued | running ──cancel──▶ cancelled

    A running attempt can also end ``lost``: its lease expired (rescuer: the task is requeued,
    failed or cancelled) or its worker shut down (give-back: the task is requeued).

See docs/state-machine.md.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

from errors import IllegalTransition, NotFound
from models.db import database
from models.tables import Task, TaskEvent

TERMINAL = ("done", "failed", "cancelled")


@dataclass(frozen=True)
class NewTask:
    """What enqueue asks to store: one validated spec under one trace id."""

    trace_id: str
    spec: dict[str, Any]
    idempotency_key: str | None = None
    request_hash: str | None = None


@dataclass(frozen=True)
class ClaimedAttempt:
    """A task this worker now runs as attempt ``attempt`` under job ``job_id``."""

    task_id: str
    trace_id: str
    job_id: str
    attempt: int
    max_attempts: int
    spec: dict[str, Any]
    timeout_s: float | None


@dataclass(frozen=True)
class AttemptOutcome:
    """How the task stands after an attempt finished."""

    task_status: str
    attempt: int
    run_after: datetime | None = None


class FenceLost(IllegalTransition):
    """This worker no longer holds the attempt (it was rescued, cancelled or finished)."""

    code = "fence_lost"


def record_event(task_id: str, trace_id: str, event: str, **attrs: Any) -> None:
    """Append one row to the durable timeline (call inside the transition's transaction)."""
    TaskEvent.insert(task_id=task_id, trace_id=trace_id, event=event, attrs=attrs).execute()


def create_tasks(new_tasks: list[NewTask]) -> list[str]:
    """Insert queued tasks and their ``task_enqueued`` events in ONE transaction."""
    ids: list[str] = []
    with database.atomic():
        for new in new_tasks:
            task_id = str(uuid.uuid4())
            spec = new.spec
            database.execute_sql(
                "INSERT INTO tasks (id, trace_id, name, spec, status, priority, max_attempts,"
                " timeout_s, labels, idempotency_key, request_hash)"
                " VALUES (%s, %s, %s, %s, 'queued', %s, %s, %s, %s, %s, %s)",
                (task_id, new.trace_id, spec.get("name"), _jsonb(spec), spec.get("priority", 0),
                 spec.get("max_attempts", 1), spec.get("timeout_s"), _jsonb(spec.get("labels", {})),
                 new.idempotency_key, new.request_hash),
            )
            record_event(task_id, new.trace_id, "task_enqueued", name=spec.get("name"),
                         steps=[step["action"] for step in spec["steps"]])
            ids.append(task_id)
    return ids


def find_by_idempotency_key(key: str) -> Task | None:
    return Task.get_or_none(Task.idempotency_key == key)


def mark_dispatched(task_id: str, trace_id: str, *, resent: bool = False,
                    broker: str = "") -> None:
    """The broker accepted the wake-up message for this queued task."""
    mark_dispatched_many([(task_id, trace_id)], resent=resent, broker=broker)


def mark_dispatched_many(tasks: list[tuple[str, str]], *, resent: bool = False,
                         broker: str = "") -> None:
    """The broker accepted these (task_id, trace_id) wake-ups: one transaction for all."""
    if not tasks:
        return
    ids, traces = [t[0] for t in tasks], [t[1] for t in tasks]
    with database.atomic():
        database.execute_sql(
            "UPDATE tasks SET dispatched_at = now(), dispatch_count = dispatch_count + 1"
            " WHERE id = ANY(%s::uuid[]) AND status = 'queued'",
            (ids,))
        database.execute_sql(
            "INSERT INTO task_events (task_id, trace_id, event, attrs)"
            " SELECT task_id, trace_id, %s, %s FROM unnest(%s::uuid[], %s::uuid[])"
            " AS sent(task_id, trace_id)",
            ("task_redispatched" if resent else "task_dispatched", _jsonb({"broker": broker}),
             ids, traces))


def record_dispatch_failed(task_id: str, trace_id: str, error: str) -> None:
    """The broker refused the message; the row stays queued and the dispatcher re-sends it."""
    with database.atomic():
        database.execute_sql(
            "UPDATE tasks SET dispatched_at = NULL WHERE id = %s AND status = 'queued'", (task_id,)
        )
        record_event(task_id, trace_id, "dispatch_failed", error=error[:500])


_DUE_FOR_DISPATCH = """
WITH due AS (
    SELECT id FROM tasks
     WHERE status = 'queued' AND NOT cancel_requested
       AND (dispatched_at IS NULL
            OR (run_after < now() - make_interval(secs => %(stale)s)
                AND dispatched_at < now() - make_interval(
                    secs => %(stale)s * power(2, LEAST(GREATEST(dispatch_count - 1, 0), 6)))))
     ORDER BY run_after
     LIMIT %(limit)s
       FOR UPDATE SKIP LOCKED)
UPDATE tasks t SET dispatched_at = now()
  FROM due WHERE t.id = due.id
RETURNING t.id, t.trace_id, GREATEST(0, EXTRACT(EPOCH FROM t.run_after - now()))
"""


def tasks_due_for_dispatch(stale_s: float, limit: int = 100) -> list[tuple[str, str, float]]:
    """Take the queued tasks that need a wake-up message: never sent (or the send failed), or
    sent and still unclaimed after ``stale_s``, backing off (×2 per send, up to ×64) so a
    backlog waiting for busy workers is not re-sent every threshold.

    Returns ``(task_id, trace_id, seconds_until_due)``. The rows are marked in the same
    statement that picks them, so another dispatcher's pass does not pick them again; a send
    that then fails clears the mark (``record_dispatch_failed`` / ``release_dispatch``).
    """
    with database.atomic():
        rows = database.execute_sql(_DUE_FOR_DISPATCH, {"stale": stale_s, "limit": limit}).fetchall()
    return [(str(r[0]), str(r[1]), float(r[2])) for r in rows]


def release_dispatch(task_ids: list[str]) -> None:
    """Tasks taken for dispatch but not sent (the broker was down): due again next pass."""
    if task_ids:
        database.execute_sql("UPDATE tasks SET dispatched_at = NULL WHERE id = ANY(%s::uuid[])"
                             " AND status = 'queued'", (task_ids,))


_CLAIM = """
UPDATE tasks SET status = 'running', attempts = attempts + 1, current_job_id = %(job_id)s,
       started_at = coalesce(started_at, now()), updated_at = now(), error = NULL,
       dispatch_count = 0
 WHERE id = (SELECT id FROM tasks
              WHERE status = 'queued' AND run_after <= now() AND NOT cancel_requested
                AND (%(task_id)s::uuid IS NULL OR id = %(task_id)s::uuid)
              ORDER BY priority DESC, run_after
              LIMIT 1 FOR NO KEY UPDATE {wait})
RETURNING id, trace_id, attempts, max_attempts, spec, timeout_s
"""
# Claiming the next task skips rows other workers hold. Claiming a named task (a delivered
# message) waits for short-lived locks instead (the API marking it dispatched, an operator's
# cancel): skipping would ack the message and leave the task to the dispatcher. After the wait
# PostgreSQL re-checks the WHERE clause, so a duplicate delivery still finds nothing.
_CLAIM_NEXT = _CLAIM.format(wait="SKIP LOCKED")
_CLAIM_NAMED = _CLAIM.format(wait="")


def claim_task(worker: str, lease_s: float, task_id: str | None = None) -> ClaimedAttempt | None:
    """Claim one due queued task (that one, or the next) with a single statement.

    ``None`` is a normal outcome: a duplicate delivery, a task not yet due, or (claiming the
    next) every due task is held by another worker.
    """
    job_id = str(uuid.uuid4())
    with database.atomic():
        if task_id is not None:
            database.execute_sql("SET LOCAL lock_timeout = '10s'")
        row = database.execute_sql(_CLAIM_NAMED if task_id else _CLAIM_NEXT,
                                   {"job_id": job_id, "task_id": task_id}).fetchone()
        if row is None:
            return None
        claimed_id, trace_id, attempt, max_attempts, spec, timeout_s = row
        database.execute_sql(
            "INSERT INTO jobs (id, task_id, trace_id, attempt, status, worker, lease_expires_at,"
            " heartbeat_at) VALUES (%s, %s, %s, %s, 'running', %s,"
            " now() + make_interval(secs => %s), now())",
            (job_id, claimed_id, trace_id, attempt, worker, lease_s),
        )
        record_event(str(claimed_id), str(trace_id), "task_claimed", job_id=job_id,
                     attempt=attempt, worker=worker)
    return ClaimedAttempt(task_id=str(claimed_id), trace_id=str(trace_id), job_id=job_id,
                          attempt=attempt, max_attempts=max_attempts, spec=spec,
                          timeout_s=timeout_s)


def renew_lease(job_id: str, lease_s: float) -> bool:
    """Heartbeat: push the lease out. ``False`` when the attempt is no longer ours."""
    with database.atomic():
        cursor = database.execute_sql(
            "UPDATE jobs SET heartbeat_at = now(), lease_expires_at = now() + make_interval(secs => %s)"
            " WHERE id = %s AND status = 'running'",
            (lease_s, job_id),
        )
        return bool(cursor.rowcount)


def cancel_requested(task_id: str) -> bool:
    row = database.execute_sql("SELECT cancel_requested FROM tasks WHERE id = %s", (task_id,))
    found = row.fetchone()
    return bool(found and found[0])


def finish_attempt(attempt: ClaimedAttempt, *, error: str | None, retryable: bool,
                   retry_delay_s: float, cancelled: bool = False) -> AttemptOutcome:
    """End the attempt: ``done``, ``failed``, ``cancelled`` or back to ``queued`` for a retry.

    Fenced: it only applies while this attempt still holds the task, so a worker that wakes up
    after its attempt was rescued cannot overwrite the task (raises ``FenceLost``).
    """
    with database.atomic():
        flagged = database.execute_sql(
            "SELECT cancel_requested FROM tasks WHERE id = %s FOR NO KEY UPDATE", (attempt.task_id,)
        ).fetchone()
        # An operator's cancel wins over a retry: a cancelled task is never requeued.
        job_status, task_status, event = _attempt_result(
            attempt, error, retryable, cancelled or bool(flagged and flagged[0] and error))
        fenced = database.execute_sql(
            "UPDATE jobs SET status = %s, error = %s, finished_at = now(), updated_at = now()"
            " WHERE id = %s AND status = 'running'",
            (job_status, error, attempt.job_id),
        )
        if not fenced.rowcount:
            raise FenceLost(f"attempt {attempt.job_id} no longer holds task {attempt.task_id}")
        row = database.execute_sql(
            "UPDATE tasks SET status = %s, error = %s, updated_at = now(), current_job_id = NULL,"
            " finished_at = CASE WHEN %s IN ('done', 'failed', 'cancelled') THEN now() END,"
            " run_after = CASE WHEN %s = 'queued' THEN now() + make_interval(secs => %s)"
            "                  ELSE run_after END,"
            " dispatched_at = CASE WHEN %s = 'queued' THEN now() ELSE dispatched_at END"
            " WHERE id = %s AND status = 'running' AND current_job_id = %s RETURNING run_after",
            (task_status, error, task_status, task_status, retry_delay_s, task_status,
             attempt.task_id, attempt.job_id),
        ).fetchone()
        if row is None:
            raise FenceLost(f"task {attempt.task_id} is no longer held by {attempt.job_id}")
        attrs: dict[str, Any] = {"job_id": attempt.job_id, "attempt": attempt.attempt}
        if error:
            attrs["error"] = error
        if task_status == "queued":
            attrs["run_after"] = row[0].isoformat()
        record_event(attempt.task_id, attempt.trace_id, event, **attrs)
    return AttemptOutcome(task_status=task_status, attempt=attempt.attempt,
                          run_after=row[0] if task_status == "queued" else None)


def _attempt_result(attempt: ClaimedAttempt, error: str | None, retryable: bool,
                    cancelled: bool) -> tuple[str, str, str]:
    """(job status, task status, event) for an attempt that ended this way."""
    if cancelled:
        return "cancelled", "cancelled", "task_cancelled"
    if error is None:
        return "done", "done", "task_done"
    if retryable and attempt.attempt < attempt.max_attempts:
        return "failed", "queued", "retry_scheduled"
    return "failed", "failed", "task_failed"


def give_back_attempt(attempt: ClaimedAttempt, reason: str) -> None:
    """This worker stops (shutdown) before the attempt ended: the attempt is ``lost`` with
    ``reason`` and the task goes back to ``queued`` for another worker, at once. Fenced."""
    with database.atomic():
        fenced = database.execute_sql(
            "UPDATE jobs SET status = 'lost', error = %s, finished_at = now(), updated_at = now()"
            " WHERE id = %s AND status = 'running'", (reason, attempt.job_id))
        if not fenced.rowcount:
            raise FenceLost(f"attempt {attempt.job_id} no longer holds task {attempt.task_id}")
        database.execute_sql(
            "UPDATE tasks SET status = 'queued', current_job_id = NULL, run_after = now(),"
            " dispatched_at = NULL, updated_at = now() WHERE id = %s AND current_job_id = %s",
            (attempt.task_id, attempt.job_id))
        record_event(attempt.task_id, attempt.trace_id, reason, job_id=attempt.job_id,
                     attempt=attempt.attempt)


@dataclass(frozen=True)
class RescuedAttempt:
    task_id: str
    trace_id: str
    job_id: str
    worker: str
    task_status: str


_EXPIRED = """
SELECT j.id, j.task_id, j.trace_id, j.attempt, j.worker, t.max_attempts, t.cancel_requested
  FROM jobs j JOIN tasks t ON t.id = j.task_id AND t.current_job_id = j.id
 WHERE j.status = 'running' AND t.status = 'running' AND j.lease_expires_at < now()
 ORDER BY j.lease_expires_at LIMIT %s
   FOR UPDATE OF j, t SKIP LOCKED
"""


def rescue_expired_leases(limit: int = 100) -> list[RescuedAttempt]:
    """Attempts whose worker stopped renewing the lease: mark them ``lost`` (``worker_lost``)
    and requeue the task if attempts remain, else fail it with that reason."""
    rescued: list[RescuedAttempt] = []
    with database.atomic():
        for job_id, task_id, trace_id, attempt, worker, max_attempts, cancel in \
                database.execute_sql(_EXPIRED, (limit,)).fetchall():
            status = "cancelled" if cancel else ("queued" if attempt < max_attempts else "failed")
            database.execute_sql(
                "UPDATE jobs SET status = 'lost', error = 'worker_lost', finished_at = now(),"
                " updated_at = now() WHERE id = %s", (job_id,))
            database.execute_sql(
                "UPDATE tasks SET status = %s, current_job_id = NULL, updated_at = now(),"
                " error = CASE WHEN %s = 'queued' THEN error ELSE 'worker_lost: worker ' || %s ||"
                "   ' stopped renewing its lease' END,"
                " finished_at = CASE WHEN %s = 'queued' THEN NULL ELSE now() END,"
                " run_after = now(), dispatched_at = NULL WHERE id = %s",
                (status, status, worker, status, task_id))
            record_event(str(task_id), str(trace_id), "attempt_lost", job_id=str(job_id),
                         attempt=attempt, worker=worker, reason="worker_lost")
            record_event(str(task_id), str(trace_id),
                         {"queued": "retry_scheduled", "failed": "task_failed",
                          "cancelled": "task_cancelled"}[status],
                         job_id=str(job_id), attempt=attempt, error="worker_lost")
            rescued.append(RescuedAttempt(str(task_id), str(trace_id), str(job_id), worker, status))
    return rescued


def cancel_task(task_id: str, actor: str) -> str:
    """Operator cancel: a queued task is cancelled now; a running one is asked to stop."""
    with database.atomic():
        task = _lock_task(task_id)
        if task["status"] == "queued":
            database.execute_sql(
                "UPDATE tasks SET status = 'cancelled', finished_at = now(), updated_at = now(),"
                " error = 'cancelled by operator' WHERE id = %s", (task_id,))
            record_event(task_id, task["trace_id"], "task_cancelled", by=actor)
            return "cancelled"
        if task["status"] == "running":
            database.execute_sql(
                "UPDATE tasks SET cancel_requested = true, updated_at = now() WHERE id = %s",
                (task_id,))
            record_event(task_id, task["trace_id"], "cancel_requested", by=actor)
            return "running"
    raise IllegalTransition(f"a {task['status']} task cannot be cancelled",
                            detail={"status": task["status"]})


def retry_task(task_id: str, actor: str) -> str:
    """Operator retry: a failed or cancelled task is queued again, same task and trace."""
    with database.atomic():
        task = _lock_task(task_id)
        if task["status"] not in ("failed", "cancelled"):
            raise IllegalTransition(f"a {task['status']} task cannot be retried",
                                    detail={"status": task["status"]})
        database.execute_sql(
            "UPDATE tasks SET status = 'queued', cancel_requested = false, error = NULL,"
            " finished_at = NULL, run_after = now(), dispatched_at = NULL, dispatch_count = 0,"
            " max_attempts = GREATEST(max_attempts, attempts + 1), updated_at = now()"
            " WHERE id = %s", (task_id,))
        record_event(task_id, task["trace_id"], "task_retried", by=actor)
    return "queued"


def trace_of(task_id: str) -> str:
    row = database.execute_sql("SELECT trace_id FROM tasks WHERE id = %s", (task_id,)).fetchone()
    if row is None:
        raise NotFound(f"no task {task_id}")
    return str(row[0])


def _lock_task(task_id: str) -> dict[str, Any]:
    row = database.execute_sql(
        "SELECT status, trace_id FROM tasks WHERE id = %s FOR UPDATE", (task_id,)
    ).fetchone()
    if row is None:
        raise NotFound(f"no task {task_id}")
    return {"status": row[0], "trace_id": str(row[1])}


def _jsonb(value: Any) -> Jsonb:
    return Jsonb(value)
