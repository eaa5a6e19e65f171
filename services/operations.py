"""What an operator asks and does, for the JSON API, the console and the CLI alike: a task's
whole story with its diagnosis, lists and counts, a trace's timeline, an artifact and its
content, the system's health, cancel and retry."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from errors import BadRequest, NotFound, StorageError, Unavailable
from logging_setup import log_event
from models import state_machine, views
from models.artifacts import get_artifact
from models.metrics import QueueHealth, get_queue_health
from models.tasks import task_exists as _task_exists
from models.tasks import trace_of
from redaction import redact_params
from runtime import Runtime
from services.diagnosis import diagnose
from services.dispatch import dispatch
from states import ArtifactStatus, TaskStatus
from storage.s3 import key_from_uri

logger = logging.getLogger("jct.operations")


def parse_id(value: str, what: str) -> str:
    """A canonical UUID, or ``NotFound`` (an id that cannot exist is simply not found)."""
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise NotFound(f"no {what} {value!r}") from None


def parse_status(value: str | None) -> str | None:
    """A task status filter (``None`` for any), or ``BadRequest`` naming the ones there are."""
    if not value:
        return None
    try:
        return str(TaskStatus(value))
    except ValueError:
        raise BadRequest(f"status must be one of {', '.join(TaskStatus)}") from None


# ── tasks and traces ───────────────────────────────────────────────────────────────────────


def task_story(rt: Runtime, task_id: str) -> dict[str, Any]:
    """The task with its jobs, actions, artifacts, events and a ``diagnosis``."""
    with rt.db.connection():
        task = views.get_task(rt.db, parse_id(task_id, "task"))
        if task is None:
            raise NotFound(f"no task {task_id}")
        ahead = views.queued_ahead(rt.db, task["id"]) if task["status"] == TaskStatus.QUEUED else 0
    task["diagnosis"] = diagnose(task, rt.clock.now(), queued_ahead=ahead)
    # What a spec holds inline under a sensitive name (headers, URL credentials) is shown as
    # ***, to every reader; secret references are names and are shown as they are.
    task["spec"] = redact_params(task["spec"])
    return task


def task_exists(rt: Runtime, task_id: str) -> bool:
    try:
        wanted = parse_id(task_id, "task")
    except NotFound:
        return False
    with rt.db.connection():
        return _task_exists(rt.db, wanted)


def list_tasks(rt: Runtime, *, status: str | None = None, trace_id: str | None = None,
               name: str | None = None, label: tuple[str, str] | None = None,
               since: datetime | None = None, limit: int = 50,
               cursor: str | None = None) -> dict[str, Any]:
    """A page of tasks, newest first, and the cursor of the next page."""
    try:
        with rt.db.connection():
            return views.list_tasks(rt.db, status=status, trace_id=trace_id, name=name,
                                    label=label, since=since, limit=limit, cursor=cursor)
    except ValueError:
        raise BadRequest("cursor is not one this API handed out") from None


STATUS_COUNT_CAP = views.COUNT_CAP


def status_counts(rt: Runtime, *, trace_id: str | None = None, name: str | None = None,
                  label: tuple[str, str] | None = None) -> dict[str, int]:
    """Tasks per status under the list's filters; every status is present, zero included.
    A count past ``views.COUNT_CAP`` stops at ``COUNT_CAP + 1`` (shown as "10,000+")."""
    with rt.db.connection():
        return views.count_by_status(rt.db, trace_id=trace_id, name=name, label=label)


def trace_story(rt: Runtime, trace_id: str) -> dict[str, Any]:
    with rt.db.connection():
        trace = views.trace_timeline(rt.db, parse_id(trace_id, "trace"))
    if trace is None:
        raise NotFound(f"no task has trace id {trace_id}")
    return trace


# ── artifacts ──────────────────────────────────────────────────────────────────────────────


def find_artifact(rt: Runtime, artifact_id: str) -> dict[str, Any]:
    """An artifact's row (with its ``content_url``)."""
    with rt.db.connection():
        found = get_artifact(rt.db, parse_id(artifact_id, "artifact"))
    if found is None:
        raise NotFound(f"no artifact {artifact_id}")
    return views.with_content_url(found)


@dataclass
class ArtifactContent:
    """An artifact's row and its blob, streaming; the first chunk is already read, so an
    object store that is down is known before a response starts."""

    artifact: dict[str, Any]
    chunks: Iterator[bytes]

    def head(self, limit: int) -> tuple[bytes, bool]:
        """The first ``limit`` bytes, and whether there was more (then the stream is closed)."""
        data = bytearray()
        try:
            for chunk in self.chunks:
                data += chunk
                if len(data) > limit:
                    break
        except StorageError as exc:
            raise Unavailable("object store unavailable", detail=str(exc)) from exc
        finally:
            if isinstance(self.chunks, Generator):
                self.chunks.close()  # releases the S3 response when we stopped early
        return bytes(data[:limit]), len(data) > limit


def open_artifact(rt: Runtime, artifact_id: str) -> ArtifactContent:
    """The artifact and a stream of its blob; ``Unavailable`` while the blob is still pending
    on a worker or the object store does not answer."""
    return open_blob(rt, find_artifact(rt, artifact_id))


def open_blob(rt: Runtime, artifact: dict[str, Any]) -> ArtifactContent:
    """The blob of an artifact row already read (see ``open_artifact``)."""
    if artifact["status"] == ArtifactStatus.PENDING:
        raise Unavailable("the blob is kept on the worker until the object store takes it",
                          detail={"status": "pending", "pending_path": artifact["pending_path"]})
    stream = rt.store.stream(key_from_uri(artifact["uri"], rt.settings.s3_bucket))
    try:
        first = next(stream, b"")
    except StorageError as exc:
        raise Unavailable("object store unavailable", detail=str(exc)) from exc

    def chunks() -> Iterator[bytes]:
        yield first
        yield from stream

    return ArtifactContent(artifact, chunks())


# ── health ─────────────────────────────────────────────────────────────────────────────────


def health(rt: Runtime) -> dict[str, str]:
    """Each dependency's state: ``ok`` or ``unreachable`` (today: the database). Why is logged,
    not returned: the driver's message names socket paths and hosts."""
    try:
        rt.db.ping()
        return {"db": "ok"}
    except Unavailable as exc:
        log_event(logger, "health_check_failed", f"database unreachable: {exc.detail}",
                  level=logging.WARNING, check="db", detail=exc.detail)
        return {"db": "unreachable"}


def queue_health(rt: Runtime) -> QueueHealth:
    with rt.db.connection():
        return get_queue_health(rt.db)


# ── actions ────────────────────────────────────────────────────────────────────────────────


def cancel(rt: Runtime, task_id: str, actor: str) -> str:
    """``cancelled`` (it was queued) or ``running`` (asked to stop at its next interruptible
    point); ``IllegalTransition`` for a finished task."""
    with rt.db.connection():
        status = str(state_machine.cancel_task(rt.db, parse_id(task_id, "task"), actor))
    if status == TaskStatus.CANCELLED:  # a running task's cancel is counted when its attempt ends
        rt.metrics.task_settled(TaskStatus.CANCELLED)
    return status


def retry(rt: Runtime, task_id: str, actor: str) -> str:
    """Queue a failed or cancelled task again on the same trace and wake a worker; returns
    the trace id."""
    task_id = parse_id(task_id, "task")
    with rt.db.connection():
        state_machine.retry_task(rt.db, task_id, actor)
        trace_id = trace_of(rt.db, task_id)
        dispatch(rt, task_id, trace_id)
    return trace_id
