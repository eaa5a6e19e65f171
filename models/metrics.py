"""Aggregates for ``GET /metrics`` and the console's status counts: one round trip each.

Counts come from the database rather than from process memory because the API runs as several
gunicorn workers: only the system of record gives every scrape the same answer.
"""

from __future__ import annotations

from dataclasses import dataclass

from psycopg.types.json import Jsonb

from models.db import database

TASK_STATUSES = ("queued", "running", "done", "failed", "cancelled")


@dataclass(frozen=True)
class QueueHealth:
    """What an alert on a stuck system needs: how long the oldest due task has waited, and how
    many running attempts have let their lease run out (their worker is probably gone)."""

    oldest_due_queued_age_s: float
    running_jobs: int
    expired_leases: int


def count_tasks_by_status(*, trace_id: str | None = None, name: str | None = None,
                          label: tuple[str, str] | None = None) -> dict[str, int]:
    """Every status of the state machine, zero included, so a series never disappears.

    The optional filters are the task list's, so the console's counts match the rows it shows.
    """
    clauses: list[str] = ["TRUE"]  # only these fixed fragments are joined into the SQL
    params: list[object] = []
    if trace_id:
        clauses.append("trace_id = %s")
        params.append(trace_id)
    if name:
        clauses.append("name = %s")
        params.append(name)
    if label:
        clauses.append("labels @> %s")
        params.append(Jsonb({label[0]: label[1]}))
    counts = dict.fromkeys(TASK_STATUSES, 0)
    rows = database.execute_sql(
        f"SELECT status, count(*) FROM tasks WHERE {' AND '.join(clauses)} GROUP BY status", params
    ).fetchall()
    for status, count in rows:
        counts[str(status)] = int(count)
    return counts


_QUEUE_HEALTH = """
SELECT
  (SELECT coalesce(EXTRACT(EPOCH FROM now() - min(run_after)), 0)
     FROM tasks WHERE status = 'queued' AND run_after <= now()),
  (SELECT count(*) FROM jobs WHERE status = 'running'),
  (SELECT count(*) FROM jobs WHERE status = 'running' AND lease_expires_at < now())
"""


def get_queue_health() -> QueueHealth:
    """Uses the partial indexes on queued tasks and running jobs, so it stays cheap."""
    row = database.execute_sql(_QUEUE_HEALTH).fetchone()
    return QueueHealth(oldest_due_queued_age_s=max(0.0, float(row[0])), running_jobs=int(row[1]),
                       expired_leases=int(row[2]))
