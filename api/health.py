"""``GET /healthz``: 200 when the database answers, 503 otherwise."""

from __future__ import annotations

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue

from api.current import runtime
from services import operations

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> ResponseReturnValue:
    rt = runtime()
    checks = operations.health(rt)
    ok = all(state == "ok" for state in checks.values())
    return jsonify(ok=ok, checks=checks, broker=rt.settings.broker_kind), 200 if ok else 503
