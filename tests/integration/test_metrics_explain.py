"""A scrape's database gauges and the console's status counts stay cheap with a million tasks:
the plans of their queries read indexes only, never a whole table (``EXPLAIN``, not a timing:
timings lie on a busy machine)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from migrations.runner import apply_migrations
from models.metrics import QUEUE_HEALTH
from models.views import COUNT_BY_STATUS, COUNT_CAP
from states import TaskStatus
from tests.integration.conftest import create_database

TASKS = 1_000_000
JOBS = 100_000       # one per task for the first ones: done, and the running ones
ARTIFACTS = 100_000  # a log per job, a few of them pending

# Indexes the gauges' query cannot use (other columns): dropped in this throw-away database so
# that filling it takes seconds, not half a minute.
UNRELATED_INDEXES = ("tasks_trace_id_idx", "tasks_created_idx", "jobs_trace_id_idx",
                     "artifacts_trace_id_idx", "artifacts_task_id_idx")

# Mostly finished history, as a long-lived system has: 2,000 queued (half due), 500 running.
# Ids in ascending order (u: n as 32 hex digits) keep the primary keys' inserts appends.
FILL = f"""
INSERT INTO tasks (id, trace_id, spec, status, run_after, created_at)
SELECT u, u, '{{"steps": []}}',
       CASE WHEN n <= 500 THEN 'running' WHEN n <= 2500 THEN 'queued'
            WHEN n % 50 = 0 THEN 'failed' ELSE 'done' END,
       now() + CASE WHEN n BETWEEN 501 AND 1500 THEN interval '1 hour' ELSE -interval '1 minute' END,
       now() - n * interval '1 second'
  FROM (SELECT n, lpad(to_hex(n), 32, '0')::uuid AS u FROM generate_series(1, {TASKS}) AS n) AS s;
INSERT INTO jobs (id, task_id, trace_id, attempt, status, worker, lease_expires_at)
SELECT u, u, u, 1,
       CASE WHEN n <= 500 THEN 'running' ELSE 'done' END, 'host:1',
       now() + CASE WHEN n <= 10 THEN -interval '1 minute' ELSE interval '30 seconds' END
  FROM (SELECT n, lpad(to_hex(n), 32, '0')::uuid AS u FROM generate_series(1, {JOBS}) AS n) AS s;
INSERT INTO artifacts (id, task_id, job_id, trace_id, kind, name, uri, size, sha256, content_type,
                       status)
SELECT u, u, u, u, 'log',
       'worker.log.jsonl', 's3://b/k' || n, 1, '', 'application/x-ndjson',
       CASE WHEN n % 10000 = 0 THEN 'pending' ELSE 'stored' END
  FROM (SELECT n, lpad(to_hex(n), 32, '0')::uuid AS u FROM generate_series(1, {ARTIFACTS}) AS n) AS s;
ANALYZE tasks, jobs, artifacts;
"""


@pytest.fixture(scope="module")
def million(pg_admin_url: str) -> Iterator[str]:
    """A database of its own holding a million tasks."""
    url = create_database(pg_admin_url)
    apply_migrations(url)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET synchronous_commit = off")
        for index in UNRELATED_INDEXES:
            conn.execute(f"DROP INDEX {index}")
        conn.execute("ALTER TABLE tasks DROP CONSTRAINT tasks_idempotency_key_key")
        conn.execute(FILL)
    yield url
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {url.rsplit('/', 1)[1].split('?')[0]}")


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


def test_the_gauges_read_indexes_only_with_a_million_tasks(million: str) -> None:
    """No sequential scan anywhere in the plan; every table is reached through an index, and
    the answers are the rows' (so the plan is the real query's)."""
    with psycopg.connect(million) as conn:
        (raw,) = conn.execute("EXPLAIN (FORMAT JSON) " + QUEUE_HEALTH).fetchone()  # type: ignore[misc]
        row = conn.execute(QUEUE_HEALTH).fetchone()
    plan = (raw if isinstance(raw, list) else json.loads(raw))[0]["Plan"]
    scans = [(node["Node Type"], node.get("Relation Name"), node.get("Index Name"))
             for node in _nodes(plan) if "Scan" in node["Node Type"]]
    assert not [s for s in scans if s[0] == "Seq Scan"], scans
    assert {relation for _, relation, _ in scans if relation} == {"tasks", "jobs", "artifacts"}
    assert all(index for kind, _, index in scans if kind != "Bitmap Heap Scan"), scans
    assert row is not None
    _age, running_jobs, expired, queued, running, pending = row
    assert (running_jobs, expired, queued, running, pending) == (500, 10, 2000, 500, 10)


def test_the_consoles_status_counts_stop_at_their_cap_with_a_million_tasks(million: str) -> None:
    """The task list's counts walk the status index at most ``COUNT_CAP + 1`` entries a status
    (the console shows "10,000+"), never the table: no sequential scan, and the answers are
    the rows' up to the cap."""
    params = {"trace_id": None, "name": None, "label": None, "since": None,
              "statuses": [str(status) for status in TaskStatus], "cap": COUNT_CAP + 1}
    with psycopg.connect(million) as conn:
        explained = conn.execute("EXPLAIN (FORMAT JSON) " + COUNT_BY_STATUS, params).fetchone()
        counts = dict(conn.execute(COUNT_BY_STATUS, params).fetchall())
    assert explained is not None
    raw = explained[0]
    plan = (raw if isinstance(raw, list) else json.loads(raw))[0]["Plan"]
    scans = [(node["Node Type"], node.get("Relation Name")) for node in _nodes(plan)
             if "Scan" in node["Node Type"]]
    assert not [s for s in scans if s[0] == "Seq Scan"], scans
    assert counts == {"queued": 2000, "running": 500, "done": COUNT_CAP + 1,
                      "failed": COUNT_CAP + 1, "cancelled": 0}
