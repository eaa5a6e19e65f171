"""Read side: a task with its attempts, actions, artifacts and events; lists and trace timelines.

Returns plain dicts of JSON-ready values so the HTTP edge and the CLI render the same data.
"""

from __future__ import annotations

import base64
import uuid
from datetime import datetime
from typing import Any

import peewee as pw

from models.db import database
from models.tables import ActionInvocation, Artifact, Job, Task, TaskEvent

TASK_FIELDS = ("id", "trace_id", "name", "status", "spec", "priority", "attempts", "max_attempts",
               "timeout_s", "labels", "error", "cancel_requested", "run_after", "dispatched_at",
               "created_at", "updated_at", "started_at", "finished_at")


def _json(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def _row(model: pw.Model, fields: tuple[str, ...] | None = None) -> dict[str, Any]:
    names = fields or tuple(model._meta.sorted_field_names)
    return {name: _json(getattr(model, name)) for name in names}


def _duration_ms(start: datetime | None, end: datetime | None) -> int | None:
    if start is None or end is None:
        return None
    return int((end - start).total_seconds() * 1000)


def artifact_dict(artifact: Artifact) -> dict[str, Any]:
    data = _row(artifact)
    data["content_url"] = f"/artifacts/{artifact.id}/content"
    return data


def task_summary(task: Task) -> dict[str, Any]:
    return _row(task, ("id", "trace_id", "name", "status", "attempts", "max_attempts", "error",
                       "labels", "created_at", "updated_at", "started_at", "finished_at"))


def get_task(task_id: str) -> dict[str, Any] | None:
    """The whole story of one task, or ``None`` for an unknown id."""
    task = Task.get_or_none(Task.id == task_id)
    if task is None:
        return None
    data = _row(task, TASK_FIELDS)
    jobs = Job.select().where(Job.task_id == task.id).order_by(Job.attempt)
    data["jobs"] = [{**_row(job), "duration_ms": _duration_ms(job.started_at, job.finished_at)}
                    for job in jobs]
    actions = (ActionInvocation.select().where(ActionInvocation.task_id == task.id)
               .order_by(ActionInvocation.started_at, ActionInvocation.step))
    data["actions"] = [
        {**_row(inv), "duration_ms": _duration_ms(inv.started_at, inv.completed_at)}
        for inv in actions
    ]
    artifacts = Artifact.select().where(Artifact.task_id == task.id).order_by(Artifact.created_at)
    data["artifacts"] = [artifact_dict(artifact) for artifact in artifacts]
    events = TaskEvent.select().where(TaskEvent.task_id == task.id).order_by(TaskEvent.ts, TaskEvent.id)
    data["events"] = [_row(event, ("id", "ts", "event", "attrs")) for event in events]
    return data


def encode_cursor(created_at: datetime, task_id: uuid.UUID) -> str:
    raw = f"{created_at.isoformat()}|{task_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    """Raises ``ValueError`` for a cursor this API did not hand out."""
    raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    stamp, task_id = raw.split("|", 1)
    return datetime.fromisoformat(stamp), uuid.UUID(task_id)


def list_tasks(*, status: str | None = None, trace_id: str | None = None, name: str | None = None,
               label: tuple[str, str] | None = None, since: datetime | None = None,
               limit: int = 50, cursor: str | None = None) -> dict[str, Any]:
    """Newest first; ``next_cursor`` pages stably on (created_at, id)."""
    query = Task.select()
    if status:
        query = query.where(Task.status == status)
    if trace_id:
        query = query.where(Task.trace_id == trace_id)
    if name:
        query = query.where(Task.name == name)
    if label:
        query = query.where(Task.labels.contains({label[0]: label[1]}))
    if since:
        query = query.where(Task.created_at >= since)
    if cursor:
        created_at, last_id = decode_cursor(cursor)
        query = query.where(pw.Tuple(Task.created_at, Task.id) < pw.Tuple(created_at, last_id))
    rows = list(query.order_by(Task.created_at.desc(), Task.id.desc()).limit(limit + 1))
    more = len(rows) > limit
    rows = rows[:limit]
    return {
        "tasks": [task_summary(task) for task in rows],
        "next_cursor": encode_cursor(rows[-1].created_at, rows[-1].id) if more else None,
    }


def trace_timeline(trace_id: str) -> dict[str, Any] | None:
    """Every task of a trace and one merged, time-ordered timeline; ``None`` if none."""
    tasks = list(Task.select().where(Task.trace_id == trace_id).order_by(Task.created_at))
    if not tasks:
        return None
    timeline: list[dict[str, Any]] = []
    for event in TaskEvent.select().where(TaskEvent.trace_id == trace_id):
        timeline.append({"ts": _json(event.ts), "type": "event", "task_id": str(event.task_id),
                         "event": event.event, "attrs": event.attrs})
    for inv in ActionInvocation.select().where(ActionInvocation.trace_id == trace_id):
        timeline.append({"ts": _json(inv.started_at), "type": "action", "task_id": str(inv.task_id),
                         "event": f"action_{inv.status}", "attrs": {
                             "job_id": str(inv.job_id), "step": inv.step,
                             "action": inv.action_name, "status": inv.status,
                             "duration_ms": _duration_ms(inv.started_at, inv.completed_at),
                             "downstream_status": inv.downstream_status, "error": inv.error}})
    for artifact in Artifact.select().where(Artifact.trace_id == trace_id):
        timeline.append({"ts": _json(artifact.created_at), "type": "artifact",
                         "task_id": str(artifact.task_id), "event": "artifact",
                         "attrs": {"artifact_id": str(artifact.id), "kind": artifact.kind,
                                   "uri": artifact.uri}})
    timeline.sort(key=lambda item: item["ts"])
    return {"trace_id": trace_id, "tasks": [task_summary(task) for task in tasks],
            "timeline": timeline}


def queued_ahead(task_id: str) -> int:
    """How many due queued tasks a worker would claim before this one."""
    row = database.execute_sql(
        "SELECT count(*) FROM tasks o, tasks t WHERE t.id = %s AND o.status = 'queued'"
        " AND o.id <> t.id AND o.run_after <= now() AND NOT o.cancel_requested"
        " AND (o.priority > t.priority OR (o.priority = t.priority AND o.run_after < t.run_after))",
        (task_id,)).fetchone()
    return int(row[0]) if row else 0
