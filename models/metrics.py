"""The database's gauges for ``GET /metrics``, in one round trip that stays cheap at millions
of tasks: each count reads a partial index (or the status index) whose size is the live rows
it counts, never the whole table. Totals by final status are not here: the scan over every
finished task is what made the old scrape slow; ``jct_tasks_finished_total`` counts them as
they happen (``observability.metrics``)."""

from __future__ import annotations

from dataclasses import dataclass

from models.db import Database


@dataclass(frozen=True)
class QueueHealth:
    """What an alert on a stuck system needs: how long the oldest due task has waited, and how
    many running attempts have let their lease run out (their worker is probably gone); and
    what the dashboard shows beside it: tasks waiting and running, blobs waiting for S3."""

    oldest_due_queued_age_s: float
    running_jobs: int
    expired_leases: int
    queued_tasks: int = 0
    running_tasks: int = 0
    pending_uploads: int = 0


# Index by index (tests/integration/test_metrics_explain.py keeps them so):
#   oldest due      tasks_queued_idx (run_after, …) WHERE status = 'queued': its first entry
#   running jobs    jobs_running_lease_idx WHERE status = 'running'
#   queued tasks    tasks_queued_idx / tasks_claim_order_idx (partial: queued rows only)
#   running tasks   tasks_status_idx (status, created_at): the 'running' range only
#   pending uploads artifacts_pending_idx WHERE status = 'pending'
QUEUE_HEALTH = """
SELECT
  (SELECT coalesce(EXTRACT(EPOCH FROM now() - min(run_after)), 0)
     FROM tasks WHERE status = 'queued' AND run_after <= now()),
  (SELECT count(*) FROM jobs WHERE status = 'running'),
  (SELECT count(*) FROM jobs WHERE status = 'running' AND lease_expires_at < now()),
  (SELECT count(*) FROM tasks WHERE status = 'queued'),
  (SELECT count(*) FROM tasks WHERE status = 'running'),
  (SELECT count(*) FROM artifacts WHERE status = 'pending')
"""


def get_queue_health(db: Database) -> QueueHealth:
    row = db.one(QUEUE_HEALTH)
    assert row is not None  # an aggregate always returns its one row
    return QueueHealth(oldest_due_queued_age_s=max(0.0, float(row[0])), running_jobs=int(row[1]),
                       expired_leases=int(row[2]), queued_tasks=int(row[3]),
                       running_tasks=int(row[4]), pending_uploads=int(row[5]))
