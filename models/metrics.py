"""Aggregates for ``GET /metrics`` and alerting: how the queue is doing, one round trip."""

from __future__ import annotations

from dataclasses import dataclass

from models.db import Database


@dataclass(frozen=True)
class QueueHealth:
    """What an alert on a stuck system needs: how long the oldest due task has waited, and how
    many running attempts have let their lease run out (their worker is probably gone)."""

    oldest_due_queued_age_s: float
    running_jobs: int
    expired_leases: int


_QUEUE_HEALTH = """
SELECT
  (SELECT coalesce(EXTRACT(EPOCH FROM now() - min(run_after)), 0)
     FROM tasks WHERE status = 'queued' AND run_after <= now()),
  (SELECT count(*) FROM jobs WHERE status = 'running'),
  (SELECT count(*) FROM jobs WHERE status = 'running' AND lease_expires_at < now())
"""


def get_queue_health(db: Database) -> QueueHealth:
    """Uses the partial indexes on queued tasks and running attempts, so it stays cheap."""
    row = db.one(_QUEUE_HEALTH)
    assert row is not None  # an aggregate always returns its one row
    return QueueHealth(oldest_due_queued_age_s=max(0.0, float(row[0])), running_jobs=int(row[1]),
                       expired_leases=int(row[2]))
