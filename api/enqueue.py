"""``POST /enqueue`` and ``POST /enqueue/batch``."""

from __future__ import annotations

from flask import Blueprint, g, jsonify, request
from flask.typing import ResponseReturnValue

from api.current import runtime
from api.request_body import json_body
from errors import BadRequest
from services.enqueue import enqueue, enqueue_batch

bp = Blueprint("enqueue", __name__)


@bp.post("/enqueue")
def enqueue_one() -> ResponseReturnValue:
    key = request.headers.get("Idempotency-Key")
    if key is not None and not 1 <= len(key) <= 200:
        raise BadRequest("Idempotency-Key must be 1 to 200 characters")
    body = json_body()
    result = enqueue(runtime(), body, g.trace_id, idempotency_key=key)
    response = jsonify(task_id=result.task_id, trace_id=result.trace_id, status=result.status)
    response.status_code = 202 if result.created else 200
    response.headers["Location"] = f"/tasks/{result.task_id}"
    if not result.created:
        # A repeat answers with the original task's trace id.
        response.headers["X-Trace-Id"] = result.trace_id
    return response


@bp.post("/enqueue/batch")
def enqueue_many() -> ResponseReturnValue:
    results = enqueue_batch(runtime(), json_body(), g.trace_id)
    return jsonify(trace_id=g.trace_id, tasks=[
        {"task_id": r.task_id, "trace_id": r.trace_id, "status": r.status} for r in results
    ]), 202
