"""What an operator asks and does, for the API, the console and the CLI alike: a task's whole
story with its diagnosis, a trace's timeline, an artifact, cancel and retry."""

from __future__ import annotations

import uuid
from typing import Any

from errors import NotFound
from models import task_view, transitions
from models.db import connection
from models.records import get_artifact
from models.tables import Artifact
from services.diagnosis import diagnose
from services.enqueue import dispatch


def parse_id(value: str, what: str) -> str:
    """A canonical UUID, or ``NotFound`` (an id that cannot exist is simply not found)."""
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise NotFound(f"no {what} {value!r}") from None


def task_story(task_id: str) -> dict[str, Any]:
    """The task with its jobs, actions, artifacts, events and a ``diagnosis``."""
    with connection():
        task = task_view.get_task(parse_id(task_id, "task"))
        if task is None:
            raise NotFound(f"no task {task_id}")
        task["diagnosis"] = diagnose(task)
    return task


def list_tasks(**filters: Any) -> dict[str, Any]:
    """A page of tasks, newest first (see ``models.task_view.list_tasks`` for the filters)."""
    with connection():
        return task_view.list_tasks(**filters)


def trace_story(trace_id: str) -> dict[str, Any]:
    with connection():
        trace = task_view.trace_timeline(parse_id(trace_id, "trace"))
    if trace is None:
        raise NotFound(f"no task has trace id {trace_id}")
    return trace


def find_artifact(artifact_id: str) -> Artifact:
    with connection():
        found = get_artifact(parse_id(artifact_id, "artifact"))
    if found is None:
        raise NotFound(f"no artifact {artifact_id}")
    return found


def cancel(task_id: str, actor: str) -> str:
    """``cancelled`` (it was queued) or ``running`` (asked to stop at its next interruptible
    point); ``IllegalTransition`` for a finished task."""
    with connection():
        return transitions.cancel_task(parse_id(task_id, "task"), actor)


def retry(task_id: str, actor: str) -> str:
    """Queue a failed or cancelled task again on the same trace and wake a worker; returns
    the trace id."""
    task_id = parse_id(task_id, "task")
    with connection():
        transitions.retry_task(task_id, actor)
        trace_id = str(transitions.trace_of(task_id))
        dispatch(task_id, trace_id)
    return trace_id
