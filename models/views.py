"""Read side: a task with its attempts, actions, artifacts and events; task lists; a trace's
timeline.

Returns plain dicts of JSON-ready values so the HTTP edge, the console and the CLI render the
same data.
"""

from __future__ import annotations

import base64
import uuid
from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

from models.artifacts import ARTIFACT_COLUMNS
from models.db import Database
from states import TaskStatus

TASK_COLUMNS = ("id, trace_id, name, status, spec, priority, attempts, max_attempts, timeout_s,"
                " labels, error, cancel_requested, run_after, dispatched_at, created_at,"
                " updated_at, started_at, finished_at")
SUMMARY_COLUMNS = ("id, trace_id, name, status, attempts, max_attempts, error, labels, created_at,"
                   " updated_at, started_at, finished_at")
ATTEMPT_COLUMNS = ("id, task_id, trace_id, attempt, status, worker, worker_host, worker_pid,"
                   " worker_boot_id, lease_expires_at, heartbeat_at, error, created_at, updated_at,"
                   " started_at, finished_at")
INVOCATION_COLUMNS = ("id, task_id, job_id, trace_id, step, action_name, inputs_hash, status,"
                      " started_at, completed_at, result_artifact_id, downstream_status, error,"
                      " exit_code, signal, wall_s, cpu_s, max_rss_bytes, output_tail")


def _duration_ms(start: str | None, end: str | None) -> int | None:
    if start is None or end is None:
        return None
    return int((datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds() * 1000)


def with_content_url(artifact: dict[str, Any]) -> dict[str, Any]:
    return {**artifact, "content_url": f"/artifacts/{artifact['id']}/content"}


def get_task(db: Database, task_id: str) -> dict[str, Any] | None:
    """The whole story of one task, or ``None`` for an unknown id."""
    found = db.dicts(f"SELECT {TASK_COLUMNS} FROM tasks WHERE id = %(id)s", {"id": task_id})
    if not found:
        return None
    task, by_task = found[0], {"id": task_id}
    task["jobs"] = [
        {**job, "duration_ms": _duration_ms(job["started_at"], job["finished_at"])}
        for job in db.dicts(f"SELECT {ATTEMPT_COLUMNS} FROM jobs WHERE task_id = %(id)s"
                            " ORDER BY attempt", by_task)]
    task["actions"] = [
        {**inv, "duration_ms": _duration_ms(inv["started_at"], inv["completed_at"])}
        for inv in db.dicts(f"SELECT {INVOCATION_COLUMNS} FROM action_invocations"
                            " WHERE task_id = %(id)s ORDER BY started_at, step", by_task)]
    task["artifacts"] = [with_content_url(a) for a in db.dicts(
        f"SELECT {ARTIFACT_COLUMNS} FROM artifacts WHERE task_id = %(id)s ORDER BY created_at",
        by_task)]
    task["events"] = db.dicts("SELECT id, ts, event, attrs FROM task_events WHERE task_id = %(id)s"
                              " ORDER BY ts, id", by_task)
    return task


# ── lists ──────────────────────────────────────────────────────────────────────────────────


def encode_cursor(created_at: str, task_id: str) -> str:
    raw = f"{created_at}|{task_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    """Raises ``ValueError`` for a cursor this API did not hand out."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except UnicodeDecodeError as exc:
        raise ValueError(str(exc)) from None
    stamp, task_id = raw.split("|", 1)
    return datetime.fromisoformat(stamp), uuid.UUID(task_id)


# The filters are the same for the list and its status counts: a NULL parameter means "any".
_FILTERS = """
    (%(trace_id)s::uuid IS NULL OR trace_id = %(trace_id)s::uuid)
AND (%(name)s::text IS NULL OR name = %(name)s::text)
AND (%(label)s::jsonb IS NULL OR labels @> %(label)s::jsonb)
AND (%(since)s::timestamptz IS NULL OR created_at >= %(since)s::timestamptz)
"""

_LIST = f"""
SELECT {SUMMARY_COLUMNS} FROM tasks
 WHERE {_FILTERS}
   AND (%(status)s::text IS NULL OR status = %(status)s::text)
   AND (%(after_at)s::timestamptz IS NULL
        OR (created_at, id) < (%(after_at)s::timestamptz, %(after_id)s::uuid))
 ORDER BY created_at DESC, id DESC
 LIMIT %(limit)s
"""

# Tasks per status, each count stopping at %(cap)s rows: a console page must not scan the whole
# history (a million finished tasks) to say how many there are. Each status walks its own part
# of tasks_status_idx (status, created_at DESC) at most %(cap)s entries deep, whatever the table
# holds; the ORDER BY is what makes the planner take that index for a status it cannot know in
# advance (without it, a sequential scan "until the limit", which for a rare status is the
# whole table).
COUNT_CAP = 10_000
COUNT_BY_STATUS = f"""
SELECT s.status, (SELECT count(*) FROM (SELECT 1 FROM tasks
                                         WHERE status = s.status AND {_FILTERS}
                                         ORDER BY created_at DESC
                                         LIMIT %(cap)s) AS capped)
  FROM unnest(%(statuses)s::text[]) AS s(status)
"""


def _filters(trace_id: str | None, name: str | None, label: tuple[str, str] | None,
             since: datetime | None) -> dict[str, Any]:
    return {"trace_id": trace_id, "name": name, "since": since,
            "label": Jsonb({label[0]: label[1]}) if label else None}


def list_tasks(db: Database, *, status: str | None = None, trace_id: str | None = None,
               name: str | None = None, label: tuple[str, str] | None = None,
               since: datetime | None = None, limit: int = 50,
               cursor: str | None = None) -> dict[str, Any]:
    """Newest first; ``next_cursor`` pages stably on (created_at, id). A cursor this API did
    not hand out raises ``ValueError``."""
    after_at, after_id = decode_cursor(cursor) if cursor else (None, None)
    rows = db.dicts(_LIST, {**_filters(trace_id, name, label, since), "status": status,
                            "after_at": after_at, "after_id": after_id, "limit": limit + 1})
    more = len(rows) > limit
    rows = rows[:limit]
    return {"tasks": rows,
            "next_cursor": encode_cursor(rows[-1]["created_at"], rows[-1]["id"]) if more else None}


def count_by_status(db: Database, *, trace_id: str | None = None, name: str | None = None,
                    label: tuple[str, str] | None = None, cap: int = COUNT_CAP) -> dict[str, int]:
    """Tasks per status under the list's filters, every status present (zero included), each
    at most ``cap + 1`` (``cap + 1`` means "more than ``cap``")."""
    return {str(status): int(count) for status, count in db.all(COUNT_BY_STATUS, {
        **_filters(trace_id, name, label, None), "statuses": [str(s) for s in TaskStatus],
        "cap": cap + 1})}


# ── traces ─────────────────────────────────────────────────────────────────────────────────


def trace_timeline(db: Database, trace_id: str) -> dict[str, Any] | None:
    """Every task of a trace and one merged, time-ordered timeline; ``None`` if none."""
    by_trace = {"trace_id": trace_id}
    tasks = db.dicts(f"SELECT {SUMMARY_COLUMNS} FROM tasks WHERE trace_id = %(trace_id)s"
                     " ORDER BY created_at", by_trace)
    if not tasks:
        return None
    timeline: list[dict[str, Any]] = [
        {"ts": e["ts"], "type": "event", "task_id": e["task_id"], "event": e["event"],
         "attrs": e["attrs"]}
        for e in db.dicts("SELECT ts, task_id, event, attrs FROM task_events"
                          " WHERE trace_id = %(trace_id)s", by_trace)]
    for inv in db.dicts(f"SELECT {INVOCATION_COLUMNS} FROM action_invocations"
                        " WHERE trace_id = %(trace_id)s", by_trace):
        timeline.append({"ts": inv["started_at"], "type": "action", "task_id": inv["task_id"],
                         "event": f"action_{inv['status']}", "attrs": {
                             "job_id": inv["job_id"], "step": inv["step"],
                             "action": inv["action_name"], "status": inv["status"],
                             "duration_ms": _duration_ms(inv["started_at"], inv["completed_at"]),
                             "downstream_status": inv["downstream_status"], "error": inv["error"]}})
    for artifact in db.dicts("SELECT id, task_id, kind, uri, created_at FROM artifacts"
                             " WHERE trace_id = %(trace_id)s", by_trace):
        timeline.append({"ts": artifact["created_at"], "type": "artifact",
                         "task_id": artifact["task_id"], "event": "artifact",
                         "attrs": {"artifact_id": artifact["id"], "kind": artifact["kind"],
                                   "uri": artifact["uri"]}})
    timeline.sort(key=lambda item: item["ts"])
    return {"trace_id": trace_id, "tasks": tasks, "timeline": timeline}


_QUEUED_AHEAD = """
SELECT count(*) FROM tasks o, tasks t
 WHERE t.id = %(id)s AND o.status = 'queued' AND o.id <> t.id AND o.run_after <= now()
   AND NOT o.cancel_requested
   AND (o.priority > t.priority OR (o.priority = t.priority AND o.run_after < t.run_after))
"""


def queued_ahead(db: Database, task_id: str) -> int:
    """How many due queued tasks a worker would claim before this one."""
    row = db.one(_QUEUED_AHEAD, {"id": task_id})
    return int(row[0]) if row else 0
