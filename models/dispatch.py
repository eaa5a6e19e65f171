"""Dispatch bookkeeping: which queued tasks have been sent a wake-up message, and which need
one (never sent, the send failed, or sent long ago and never claimed)."""

from __future__ import annotations

from typing import Any

from psycopg.types.json import Jsonb

from models.db import Database
from models.events import record_event, record_events
from states import Event

_MARK_SENT = """
UPDATE tasks SET dispatched_at = now(), dispatch_count = dispatch_count + 1
 WHERE id = ANY(%(ids)b::uuid[]) AND status = 'queued'
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


# Taken rows are marked in the same statement that picks them, so another dispatcher's pass does
# not pick them again; a send that then fails clears the mark (record_dispatch_failed /
# release_dispatch).
_TAKE = """
WITH due AS (
    SELECT id FROM tasks
     WHERE status = 'queued' AND NOT cancel_requested AND {which}
     ORDER BY run_after
     LIMIT %(limit)s
       FOR UPDATE SKIP LOCKED)
UPDATE tasks t SET dispatched_at = now()
  FROM due WHERE t.id = due.id
RETURNING t.id, t.trace_id, GREATEST(0, EXTRACT(EPOCH FROM t.run_after - now()))
"""
_UNSENT = _TAKE.format(which="dispatched_at IS NULL")
# Sent, still unclaimed after ``stale`` seconds, backing off ×2 per send (up to ×64).
_STALE = _TAKE.format(which="""dispatched_at IS NOT NULL
       AND run_after < now() - make_interval(secs => %(stale)s)
       AND dispatched_at < now() - make_interval(
               secs => %(stale)s * power(2, LEAST(GREATEST(dispatch_count - 1, 0), 6)))""")


def take_unsent(db: Database, limit: int = 100) -> list[tuple[str, str, float]]:
    """Take the queued tasks whose wake-up was never sent (the broker refused it, or the
    process that would have sent it died): ``(task_id, trace_id, seconds_until_due)``."""
    with db.transaction():
        rows = db.all(_UNSENT, {"limit": limit})
    return [(str(r[0]), str(r[1]), float(r[2])) for r in rows]


def take_stale(db: Database, stale_s: float, limit: int = 100) -> list[tuple[str, str, float]]:
    """Take up to ``limit`` due tasks whose wake-up was sent ``stale_s`` ago or longer (with the
    backoff) and still not claimed, oldest first."""
    with db.transaction():
        rows = db.all(_STALE, {"stale": stale_s, "limit": limit})
    return [(str(r[0]), str(r[1]), float(r[2])) for r in rows]


def count_due(db: Database) -> int:
    """Queued tasks that are due: each needs a wake-up somewhere."""
    row = db.one("SELECT count(*) FROM tasks WHERE status = 'queued' AND run_after <= now()"
                 " AND NOT cancel_requested")
    return int(row[0]) if row else 0


# The PostgreSQL broker keeps its messages in this same database (dramatiq-postgres' schema):
# the ones waiting to be taken are wake-ups still to come. A delayed message (a retry's) counts
# once it is due.
_WAITING_IN_PG_BROKER = """
SELECT count(*) FROM dramatiq.queue
 WHERE queue_name IN (%(queue)s, %(queue)s || '.DQ') AND state = 'queued'
   AND available_at <= now()
"""


# The PostgreSQL broker's own enqueue (dramatiq-postgres's INSERT and NOTIFY), for many
# messages at once, as CTEs of the enqueue's statement (``state_machine.create_tasks``): the
# NOTIFY wakes the broker's consumers when that statement commits. ``notified`` must be read
# by the statement (a plain SELECT in a WITH runs only when referenced).
PG_BROKER_OUTBOX_CTES = """
woken AS (
    INSERT INTO dramatiq.queue (queue_name, message_id, "state", message, available_at)
    SELECT %(queue)s, (m.doc->>0)::uuid, 'queued', m.doc->1, now()
      FROM jsonb_array_elements(%(messages)s) AS m(doc)
    ON CONFLICT (message_id) DO UPDATE SET "state" = 'queued', message = EXCLUDED.message,
           queue_name = EXCLUDED.queue_name, available_at = EXCLUDED.available_at,
           worker_id = NULL, consumed_at = NULL, mtime = now()
    RETURNING queue_name),
notified AS (
    SELECT pg_notify('dramatiq.' || %(queue)s || '.enqueue', '') WHERE EXISTS (SELECT FROM woken))"""


def pg_broker_outbox_params(queue: str, messages: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """Parameters of ``PG_BROKER_OUTBOX_CTES``: ``(message_id, message)`` pairs."""
    return {"queue": queue, "messages": Jsonb(messages)}


def waiting_in_pg_broker(db: Database, queue: str) -> int:
    row = db.one(_WAITING_IN_PG_BROKER, {"queue": queue})
    return int(row[0]) if row else 0


def release_dispatch(db: Database, task_ids: list[str]) -> None:
    """Tasks taken for dispatch but not sent (the broker was down): due again next pass."""
    if task_ids:
        db.execute("UPDATE tasks SET dispatched_at = NULL WHERE id = ANY(%(ids)b::uuid[])"
                   " AND status = 'queued'", {"ids": task_ids})
