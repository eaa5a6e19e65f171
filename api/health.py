"""``GET /healthz``: 200 when the database answers, 503 otherwise."""

from __future__ import annotations

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue

from config import get_settings
from errors import Unavailable
from models.db import ping

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> ResponseReturnValue:
    checks: dict[str, str] = {}
    try:
        ping()
        checks["db"] = "ok"
    except Unavailable as exc:
        checks["db"] = f"unreachable: {exc.detail}"
    ok = checks["db"] == "ok"
    return jsonify(ok=ok, checks=checks, broker=get_settings().broker_kind), 200 if ok else 503
