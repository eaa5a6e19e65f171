"""Task, trace and artifact reads, and the operator's cancel/retry."""

from __future__ import annotations

import re
from datetime import datetime

from flask import Blueprint, Response, jsonify, request, stream_with_context
from flask.typing import ResponseReturnValue

from api.current import actor, runtime
from errors import BadRequest
from services import operations
from tracing import canonical_trace_id

bp = Blueprint("tasks", __name__)


@bp.get("/tasks/<task_id>")
def get_task(task_id: str) -> ResponseReturnValue:
    return jsonify(operations.task_story(runtime(), task_id))


@bp.get("/tasks")
def list_tasks() -> ResponseReturnValue:
    args = request.args
    status = operations.parse_status(args.get("status"))
    trace_id = canonical_trace_id(args["trace_id"]) if args.get("trace_id") else None
    label = None
    if args.get("label"):
        key, sep, value = args["label"].partition(":")
        if not sep or not key:
            raise BadRequest("label must be key:value")
        label = (key, value)
    try:
        limit = int(args.get("limit", 50))
        since = _since(args["since"]) if args.get("since") else None
    except ValueError as exc:
        raise BadRequest(f"bad query parameter: {exc}") from None
    if not 1 <= limit <= 500:
        raise BadRequest("limit must be 1 to 500")
    return jsonify(operations.list_tasks(runtime(), status=status, trace_id=trace_id,
                                         name=args.get("name"), label=label, since=since,
                                         limit=limit, cursor=args.get("cursor") or None))


# RFC 3339 as /openapi.json states it, and what datetime.fromisoformat can read: an offset is
# required, no leap second, no year 0.
SINCE_PATTERN = re.compile(
    r"^(?!0000)[0-9]{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])[Tt]"
    r"(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]+)?(?:[Zz]|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])$")


def _since(value: str) -> datetime:
    if not SINCE_PATTERN.fullmatch(value):
        raise BadRequest("since must be an RFC 3339 date-time with an offset, e.g. 2026-01-31T12:00:00Z")
    return datetime.fromisoformat(value.upper())  # a day past the month's end: ValueError


@bp.get("/traces/<trace_id>")
def get_trace(trace_id: str) -> ResponseReturnValue:
    return jsonify(operations.trace_story(runtime(), trace_id))


@bp.post("/tasks/<task_id>/cancel")
def cancel(task_id: str) -> ResponseReturnValue:
    status = operations.cancel(runtime(), task_id, actor())
    return jsonify(task_id=task_id, status=status, cancel_requested=status == "running"), 202


@bp.post("/tasks/<task_id>/retry")
def retry(task_id: str) -> ResponseReturnValue:
    trace_id = operations.retry(runtime(), task_id, actor())
    return jsonify(task_id=task_id, trace_id=trace_id, status="queued"), 202


@bp.get("/artifacts/<artifact_id>")
def artifact(artifact_id: str) -> ResponseReturnValue:
    return jsonify(operations.find_artifact(runtime(), artifact_id))


@bp.get("/artifacts/<artifact_id>/content")
def artifact_content(artifact_id: str) -> ResponseReturnValue:
    content = operations.open_artifact(runtime(), artifact_id)
    found = content.artifact
    response = Response(stream_with_context(content.chunks), content_type=found["content_type"])
    response.headers["Content-Disposition"] = f'inline; filename="{found["name"]}"'
    # Blobs hold whatever a downstream answered: never let one run script on this origin.
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = "sandbox; default-src 'none'"
    response.headers["Content-Length"] = str(found["size"])
    return response
