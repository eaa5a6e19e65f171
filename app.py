"""The HTTP edge: ``create_app()`` builds the Flask application (gunicorn runs
``app:create_app()``, so each gunicorn worker builds its runtime here). Each request gets its
trace id bound here, once; every error is logged and rendered here, once (as JSON, or as a
console page for the console's routes)."""

from __future__ import annotations

import hmac
import logging
from typing import Any
from urllib.parse import urlparse

from flask import Flask, Response, g, jsonify, request
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException

import tracing
from api import console, enqueue, health, metrics, openapi, tasks
from api.current import EXTENSION, runtime
from errors import Forbidden, InvalidTraceId, JctError, Unauthorized
from logging_setup import log_event
from runtime import Runtime, build_runtime

logger = logging.getLogger("jct.api")

OPEN_PATHS = ("/healthz",)


def create_app(rt: Runtime | None = None) -> Flask:
    """The application over ``rt`` (built from the environment, with JSON logging, unless
    given)."""
    rt = rt or build_runtime("api")
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = rt.settings.max_body_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions[EXTENSION] = rt

    for blueprint in (enqueue.bp, health.bp, tasks.bp, console.bp, metrics.bp, openapi.bp):
        app.register_blueprint(blueprint)
    app.before_request(_bind_trace)
    app.before_request(_refuse_cross_origin_writes)
    app.before_request(_authorize)
    app.after_request(_stamp_response)
    app.teardown_request(_unbind_trace)
    app.register_error_handler(JctError, _render_jct_error)
    app.register_error_handler(HTTPException, _render_http_error)
    app.register_error_handler(Exception, _render_unexpected)
    return app


def _bind_trace() -> None:
    try:
        trace_id = tracing.trace_id_from_headers(request.headers)
        g.trace_error = None
    except InvalidTraceId as exc:
        trace_id, g.trace_error = tracing.new_trace_id(), exc
    g.trace_id = trace_id
    g.trace_tokens = tracing.bind_values(trace_id=trace_id)
    request.environ["jct.trace_id"] = trace_id
    # No such route or method (404/405) answers first: a bad header on it is beside the point.
    if g.trace_error is not None and request.routing_exception is None:
        raise g.trace_error


def _refuse_cross_origin_writes() -> None:
    """A browser on another site must not cancel or enqueue through a user's open API (no
    token needed when JCT_API_TOKEN is unset): writes carrying a foreign ``Origin`` are refused.
    Clients that send no ``Origin`` (curl, programs) are unaffected."""
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return
    origin = request.headers.get("Origin")
    if origin and urlparse(origin).netloc != request.host:
        raise Forbidden(f"cross-origin {request.method} from {origin} refused")


def _authorize() -> None:
    g.actor = "anonymous"
    tokens = runtime().settings.api_tokens
    if not tokens or request.path in OPEN_PATHS:
        return
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not given:
        raise Unauthorized("missing Authorization: Bearer <token>")
    match = next((t for t in tokens if hmac.compare_digest(t.token, given.strip())), None)
    if match is None:
        raise Unauthorized("unknown token")
    if match.role == "read" and request.method not in ("GET", "HEAD", "OPTIONS"):
        raise Forbidden(f"token {match.name!r} may only read")
    g.actor = match.name


def _stamp_response(response: Response) -> Response:
    response.headers.setdefault("X-Trace-Id", g.get("trace_id") or tracing.new_trace_id())
    return response


def _unbind_trace(_exc: BaseException | None) -> None:
    tokens = g.pop("trace_tokens", None)
    if tokens:
        tracing.unbind(tokens)


def _error(status: int, code: str, detail: Any) -> ResponseReturnValue:
    return jsonify(error=code, detail=detail, trace_id=g.get("trace_id")), status


def _render_jct_error(exc: JctError) -> ResponseReturnValue:
    level = logging.ERROR if exc.status >= 500 else logging.INFO
    log_event(logger, "request_rejected" if exc.status < 500 else "request_failed",
              f"{request.method} {request.path} -> {exc.status} {exc.code}: {exc}", level=level,
              status=exc.status, error=exc.code)
    if request.blueprint == console.bp.name:
        return console.error_page(exc)
    return _error(exc.status, exc.code, exc.detail)


_HTTP_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed",
               413: "payload_too_large", 415: "unsupported_media_type"}


def _render_http_error(exc: HTTPException) -> ResponseReturnValue:
    status = exc.code or 500
    code = _HTTP_CODES.get(status, exc.name.lower().replace(" ", "_"))
    # Keep werkzeug's headers but its HTML Content-Type: a 405 must say what is Allowed.
    headers = [(name, value) for name, value in exc.get_headers() if name.lower() != "content-type"]
    return jsonify(error=code, detail=exc.description, trace_id=g.get("trace_id")), status, headers


def _render_unexpected(exc: Exception) -> ResponseReturnValue:
    logger.exception("unhandled error", extra={"event": "request_failed"})
    return _error(500, "internal_error", "an unexpected error; the log has the details under this trace id")
