"""Task, trace and artifact reads, and the operator's cancel/retry."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime

from flask import Blueprint, Response, g, jsonify, request, stream_with_context
from flask.typing import ResponseReturnValue

from config import get_settings
from errors import BadRequest, NotFound, StorageError, Unavailable
from models import task_view, transitions
from models.db import connection
from models.records import get_artifact
from services.diagnosis import diagnose
from storage.s3 import get_store, key_from_uri
from tracing import canonical_trace_id

bp = Blueprint("tasks", __name__)

STATUSES = ("queued", "running", "done", "failed", "cancelled")


def _uuid(value: str, what: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise NotFound(f"no {what} {value!r}") from None


@bp.get("/tasks/<task_id>")
def get_task(task_id: str) -> ResponseReturnValue:
    with connection():
        task = task_view.get_task(_uuid(task_id, "task"))
        if task is None:
            raise NotFound(f"no task {task_id}")
        task["diagnosis"] = diagnose(task)
    return jsonify(task)


@bp.get("/tasks")
def list_tasks() -> ResponseReturnValue:
    args = request.args
    status = args.get("status") or None
    if status and status not in STATUSES:
        raise BadRequest(f"status must be one of {STATUSES}")
    trace_id = canonical_trace_id(args["trace_id"]) if args.get("trace_id") else None
    label = None
    if args.get("label"):
        key, sep, value = args["label"].partition(":")
        if not sep or not key:
            raise BadRequest("label must be key:value")
        label = (key, value)
    try:
        limit = int(args.get("limit", 50))
        since = datetime.fromisoformat(args["since"]) if args.get("since") else None
    except ValueError as exc:
        raise BadRequest(f"bad query parameter: {exc}") from None
    if not 1 <= limit <= 500:
        raise BadRequest("limit must be 1 to 500")
    try:
        with connection():
            page = task_view.list_tasks(status=status, trace_id=trace_id, name=args.get("name"),
                                        label=label, since=since, limit=limit,
                                        cursor=args.get("cursor") or None)
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("cursor is not one this API handed out") from None
    return jsonify(page)


@bp.get("/traces/<trace_id>")
def get_trace(trace_id: str) -> ResponseReturnValue:
    try:
        wanted = canonical_trace_id(trace_id)
    except BadRequest:
        raise NotFound(f"no trace {trace_id!r}") from None
    with connection():
        trace = task_view.trace_timeline(wanted)
    if trace is None:
        raise NotFound(f"no task has trace id {wanted}")
    return jsonify(trace)


@bp.post("/tasks/<task_id>/cancel")
def cancel(task_id: str) -> ResponseReturnValue:
    with connection():
        status = transitions.cancel_task(_uuid(task_id, "task"), g.actor)
    return jsonify(task_id=task_id, status=status, cancel_requested=status == "running"), 202


@bp.post("/tasks/<task_id>/retry")
def retry(task_id: str) -> ResponseReturnValue:
    from services.enqueue import dispatch

    with connection():
        status = transitions.retry_task(_uuid(task_id, "task"), g.actor)
        task = task_view.get_task(task_id)
        assert task is not None
        dispatch(task_id, task["trace_id"])
    return jsonify(task_id=task_id, trace_id=task["trace_id"], status=status), 202


@bp.get("/artifacts/<artifact_id>")
def artifact(artifact_id: str) -> ResponseReturnValue:
    with connection():
        found = get_artifact(_uuid(artifact_id, "artifact"))
    if found is None:
        raise NotFound(f"no artifact {artifact_id}")
    return jsonify(task_view.artifact_dict(found))


@bp.get("/artifacts/<artifact_id>/content")
def artifact_content(artifact_id: str) -> ResponseReturnValue:
    with connection():
        found = get_artifact(_uuid(artifact_id, "artifact"))
    if found is None:
        raise NotFound(f"no artifact {artifact_id}")
    if found.status == "pending":
        raise Unavailable("the blob is kept on the worker until the object store takes it",
                          detail={"status": "pending", "pending_path": found.pending_path})
    settings = get_settings()
    chunks = get_store(settings).stream(key_from_uri(found.uri, settings.s3_bucket))
    try:
        first = next(chunks, b"")
    except StorageError as exc:
        raise Unavailable("object store unavailable", detail=str(exc)) from exc

    def body() -> Iterator[bytes]:
        yield first
        yield from chunks

    response = Response(stream_with_context(body()), content_type=found.content_type)
    response.headers["Content-Disposition"] = f'inline; filename="{found.name}"'
    response.headers["Content-Length"] = str(found.size)
    return response
