"""The HTTP edge: ``create_app()`` builds the Flask application (gunicorn runs
``app:create_app()``, so each gunicorn worker builds its runtime here). Each request gets its
trace id bound here, once; every error is logged and rendered here, once (as JSON, or as a
console page for the console's routes)."""

from __future__ import annotations

import logging
import time
from typing import Any
from urllib.parse import urlparse

from flask import Flask, Response, g, jsonify, make_response, request
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException

import tracing
from api import access, console, enqueue, health, login, metrics, openapi, tasks
from api.current import EXTENSION, runtime
from errors import BadRequest, Forbidden, InvalidHost, InvalidTraceId, JctError, Unavailable
from host_header import host_allowed
from logging_setup import log_event
from runtime import Runtime, build_runtime

logger = logging.getLogger("jct.api")

# A load balancer or an orchestrator probes /healthz with a Host of its own choosing (a pod's
# address); what it answers is no secret, so it is served whatever the Host.
ANY_HOST_PATHS = ("/healthz",)
WWW_AUTHENTICATE = 'Bearer realm="jct"'
# Probes and scrapes every few seconds would bury the traces of work; their timings are in
# jct_http_request_seconds.
UNTRACED_PATHS = ("/healthz", "/metrics")


def create_app(rt: Runtime | None = None) -> Flask:
    """The application over ``rt`` (built from the environment, with JSON logging, unless
    given)."""
    rt = rt or build_runtime("api")
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = rt.settings.max_body_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions[EXTENSION] = rt
    rt.metrics, rt.spans  # noqa: B018 - series at zero and OTel's line at boot, not in a request

    for blueprint in (enqueue.bp, health.bp, tasks.bp, console.bp, login.bp, metrics.bp,
                      openapi.bp):
        app.register_blueprint(blueprint)
    app.before_request(_bind_trace)
    app.before_request(_refuse_unknown_host)
    app.before_request(_refuse_nul_in_query)
    app.before_request(_refuse_cross_origin_writes)
    app.before_request(access.authorize)
    app.after_request(_stamp_response)
    app.after_request(_record_request)
    app.teardown_request(_unbind_trace)
    app.register_error_handler(JctError, _render_jct_error)
    app.register_error_handler(HTTPException, _render_http_error)
    app.register_error_handler(Exception, _render_unexpected)
    return app


def _bind_trace() -> None:
    g.request_started = time.perf_counter()
    try:
        found = tracing.extract(request.headers)
        g.trace_error = None
    except InvalidTraceId as exc:
        found, g.trace_error = None, exc
    trace_id = found.trace_id if found else tracing.new_trace_id()
    g.trace_id = trace_id
    g.trace_tokens = tracing.bind_values(trace_id=trace_id)
    request.environ["jct.trace_id"] = trace_id
    if request.path not in UNTRACED_PATHS:
        g.span = runtime().spans.start(
            f"{request.method} {_route()}", "server",
            parent_span_id=found.parent_span_id if found else None,
            attributes={"http.request.method": request.method, "http.route": _route()})
    # No such route or method (404/405) answers first: a bad header on it is beside the point.
    if g.trace_error is not None and request.routing_exception is None:
        raise g.trace_error


def _refuse_unknown_host() -> None:
    """DNS rebinding: a page that re-points its own name at this API sends its own name as
    ``Host``; only the names in ``JCT_ALLOWED_HOSTS`` are answered."""
    if request.path in ANY_HOST_PATHS:
        return
    host = request.environ.get("HTTP_HOST") or request.host  # as sent (werkzeug blanks odd ones)
    default_port = 443 if request.scheme == "https" else 80
    if not host_allowed(host, runtime().settings.allowed_hosts, default_port=default_port):
        raise InvalidHost(f"Host {host!r} is not one this API answers to (JCT_ALLOWED_HOSTS)",
                          detail={"host": host})


def _refuse_nul_in_query() -> None:
    """No text column can hold NUL: a filter holding one is refused here, naming it, rather
    than reaching the database as a 500."""
    for name, value in request.args.items(multi=True):
        if "\x00" in name or "\x00" in value:
            raise BadRequest(f"query parameter {name!r} contains a NUL character",
                             detail={"parameter": name.replace("\x00", "\\u0000"),
                                     "problem": "contains a NUL character"})


def _refuse_cross_origin_writes() -> None:
    """A browser on another site must not cancel or enqueue through a user's open API (no
    token needed when JCT_API_TOKEN is unset): writes carrying a foreign ``Origin`` are refused.
    Clients that send no ``Origin`` (curl, programs) are unaffected."""
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return
    origin = request.headers.get("Origin")
    if origin and urlparse(origin).netloc != request.host:
        raise Forbidden(f"cross-origin {request.method} from {origin} refused")


def _stamp_response(response: Response) -> Response:
    response.headers.setdefault("X-Trace-Id", g.get("trace_id") or tracing.new_trace_id())
    return response


# Methods outside these are one label value, so a client cannot mint series.
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def _route() -> str:
    """The matched route's template (bounded, unlike paths), or ``unmatched``."""
    return request.url_rule.rule if request.url_rule is not None else "unmatched"


def _record_request(response: Response) -> Response:
    """``jct_http_request_seconds`` and the request span's status, for every answer (errors
    rendered by the handlers below included)."""
    started = g.get("request_started")
    method = request.method if request.method in KNOWN_METHODS else "other"
    if started is not None:
        runtime().metrics.http_request(_route(), method, response.status_code,
                                       time.perf_counter() - started)
    span = g.get("span")
    if span is not None:
        span.set({"http.response.status_code": response.status_code})
        if response.status_code >= 500:
            span.end(f"HTTP {response.status_code}")
    return response


def _unbind_trace(_exc: BaseException | None) -> None:
    span = g.pop("span", None)
    if span is not None:
        span.end(_exc)
    tokens = g.pop("trace_tokens", None)
    if tokens:
        tracing.unbind(tokens)


def _error(status: int, code: str, detail: Any) -> ResponseReturnValue:
    return jsonify(error=code, detail=detail, trace_id=g.get("trace_id")), status


def _render_jct_error(exc: JctError) -> ResponseReturnValue:
    level = logging.ERROR if exc.status >= 500 else logging.INFO
    log_event(logger, "request_rejected" if exc.status < 500 else "request_failed",
              f"{request.method} {request.path} -> {exc.status} {exc.code}: {exc}", level=level,
              status=exc.status, error=exc.code, detail=exc.detail)
    detail = public_detail(exc)
    if request.blueprint == console.bp.name:
        response = console.error_page(exc, detail)
    else:
        response = _error(exc.status, exc.code, detail)
    if exc.status == 401:
        return _with_headers(response, {"WWW-Authenticate": WWW_AUTHENTICATE})
    return response


def public_detail(exc: JctError) -> Any:
    """What the client is told. A 4xx's detail is about the request and goes back as it is. A
    5xx's detail is about the server (a driver's message naming a socket path or a host, a
    spool path): it stays in the log line above, under the trace id; the client gets the
    error's sentence (``Unavailable`` sentences are fixed text) or a pointer to the log."""
    if exc.status < 500:
        return exc.detail
    if isinstance(exc, Unavailable):
        return str(exc)
    return "the log has the details under this trace id"


def _with_headers(value: ResponseReturnValue, headers: dict[str, str]) -> Response:
    response = make_response(value)
    response.headers.update(headers)
    return response


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
