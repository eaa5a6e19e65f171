"""Dispatch bookkeeping: which queued tasks have been sent a wake-up message, and which need
one (never sent, the send failed, or sent long ago and never claimed)."""

from __future__ import annotations

from models.db import Database
from models.events import record_event, record_events
from states import Event

_MARK_SENT = """
UPDATE tasks SET dispatched_at = now(), dispatch_count = dispatch_count + 1
 WHERE id = ANY(%(ids)s::uuid[]) AND status = 'queued'
"""


def mark_dispatched(db: Database, tasks: list[tuple[str, str]], *, resent: bool = False,
                    broker: str = "") -> None:
    """The broker accepted these ``(task_id, trace_id)`` wake-ups: one transaction for all."""
    if not tasks:
        return
    with db.transaction():
        db.execute(_MARK_SENT, {"ids": [task_id for task_id, _ in tasks]})
        record_events(db, tasks, Event.TASK_REDISPATCHED if resent else Event.TASK_DISPATCHED,
                      broker=broker)


def record_dispatch_failed(db: Database, task_id: str, trace_id: str, error: str) -> None:
    """The broker refused the message; the row stays queued and the dispatcher re-sends it."""
    with db.transaction():
        db.execute("UPDATE tasks SET dispatched_at = NULL WHERE id = %(id)s AND status = 'queued'",
                   {"id": task_id})
        record_event(db, task_id, trace_id, Event.DISPATCH_FAILED, error=error[:500])


_TAKE_DUE = """
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


def take_due_for_dispatch(db: Database, stale_s: float,
                          limit: int = 100) -> list[tuple[str, str, float]]:
    """Take the queued tasks that need a wake-up message: never sent (or the send failed), or
    sent and still unclaimed after ``stale_s``, backing off (×2 per send, up to ×64) so a
    backlog waiting for busy workers is not re-sent every threshold.

    Returns ``(task_id, trace_id, seconds_until_due)``. The rows are marked in the same
    statement that picks them, so another dispatcher's pass does not pick them again; a send
    that then fails clears the mark (``record_dispatch_failed`` / ``release_dispatch``).
    """
    with db.transaction():
        rows = db.all(_TAKE_DUE, {"stale": stale_s, "limit": limit})
    return [(str(r[0]), str(r[1]), float(r[2])) for r in rows]


def release_dispatch(db: Database, task_ids: list[str]) -> None:
    """Tasks taken for dispatch but not sent (the broker was down): due again next pass."""
    if task_ids:
        db.execute("UPDATE tasks SET dispatched_at = NULL WHERE id = ANY(%(ids)s::uuid[])"
                   " AND status = 'queued'", {"ids": task_ids})
