"""``http``: a real downstream call with ``requests``, carrying ``X-Trace-Id`` and a
``traceparent`` with a fresh span id; the response is kept as a ``report`` artifact."""

from __future__ import annotations

import json
import logging
import time
from typing import Any
from urllib.parse import urlparse

import requests

import tracing
from actions.base import ActionContext, ActionResult, reject_unknown, require_number, require_str
from errors import ActionError, PermanentActionError, RetryableActionError, SpecInvalid
from logging_setup import log_event

logger = logging.getLogger(__name__)

METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"}
REPORT_BODY_LIMIT = 256 * 1024


class HttpAction:
    name = "http"

    def validate(self, params: dict[str, Any], where: str) -> dict[str, Any]:
        reject_unknown(params, {"method", "url", "headers", "json", "body", "timeout_s",
                                "expect_status"}, where)
        method = require_str(params, "method", where, required=False, default="GET").upper()
        if method not in METHODS:
            raise SpecInvalid(f"{where}.method", f"must be one of {sorted(METHODS)}")
        url = require_str(params, "url", where)
        parsed = urlparse(url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise SpecInvalid(f"{where}.url", "must be an absolute http:// or https:// URL")
        headers = params.get("headers", {})
        if not isinstance(headers, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in headers.items()):
            raise SpecInvalid(f"{where}.headers", "must be an object of string values")
        if "json" in params and "body" in params:
            raise SpecInvalid(f"{where}.body", "give json or body, not both")
        if "body" in params and not isinstance(params["body"], str):
            raise SpecInvalid(f"{where}.body", "must be a string")
        return {
            "method": method, "url": url, "headers": headers,
            "json": params.get("json"), "has_json": "json" in params, "body": params.get("body"),
            "timeout_s": require_number(params, "timeout_s", where, minimum=0.1, maximum=3600,
                                        default=30),
            "expect_status": _expect_status(params.get("expect_status"), f"{where}.expect_status"),
        }

    def run(self, params: dict[str, Any], ctx: ActionContext) -> ActionResult:
        ctx.check()
        host = (urlparse(params["url"]).hostname or "").lower()
        if "*" not in ctx.allowed_hosts and host not in ctx.allowed_hosts:
            raise PermanentActionError(f"host {host!r} is not in JCT_HTTP_ALLOWED_HOSTS")
        headers = dict(params["headers"])
        tracing.inject(headers)
        timeout = params["timeout_s"]
        remaining = ctx.remaining()
        if remaining is not None:
            timeout = max(0.05, min(timeout, remaining))
        started = time.monotonic()
        log_event(logger, "http_request", f"{params['method']} {params['url']}",
                  method=params["method"], url=params["url"], traceparent=headers.get("traceparent"))
        response = _send(params, headers, timeout)
        elapsed_ms = int((time.monotonic() - started) * 1000)
        log_event(logger, "http_response", f"{response.status_code} from {params['url']}",
                  status=response.status_code, elapsed_ms=elapsed_ms)
        result = ActionResult(output={"status": response.status_code, "elapsed_ms": elapsed_ms},
                              downstream_status=response.status_code,
                              report=_report(params, headers, response, elapsed_ms),
                              report_name="http-response.json")
        try:
            _check_status(response.status_code, params["expect_status"])
        except ActionError as exc:
            exc.result = result  # the response is evidence: keep it with the failure
            raise
        return result


def _send(params: dict[str, Any], headers: dict[str, str], timeout: float) -> requests.Response:
    kwargs: dict[str, Any] = {"headers": headers, "timeout": timeout, "allow_redirects": False}
    if params["has_json"]:
        kwargs["json"] = params["json"]
    elif params["body"] is not None:
        kwargs["data"] = params["body"].encode()
    try:
        return requests.request(params["method"], params["url"], **kwargs)
    except requests.Timeout as exc:
        raise RetryableActionError(f"downstream timed out after {timeout:.1f}s: {params['url']}") from exc
    except requests.RequestException as exc:
        raise RetryableActionError(f"downstream unreachable: {type(exc).__name__}: {exc}") from exc


def _check_status(status: int, expected: list[int] | None) -> None:
    ok = status in expected if expected else 200 <= status < 300
    if ok:
        return
    wanted = expected if expected else "2xx"
    message = f"downstream answered {status}, expected {wanted}"
    if status >= 500 or status == 429:
        raise RetryableActionError(message)
    raise PermanentActionError(message)


def _expect_status(value: Any, where: str) -> list[int] | None:
    if value is None:
        return None
    codes = [value] if isinstance(value, int) else value
    if (not isinstance(codes, list) or not codes
            or not all(isinstance(c, int) and not isinstance(c, bool) and 100 <= c <= 599
                       for c in codes)):
        raise SpecInvalid(where, "must be a status code or a list of status codes (100-599)")
    return codes


def _report(params: dict[str, Any], headers: dict[str, str], response: requests.Response,
            elapsed_ms: int) -> bytes:
    body = response.content[:REPORT_BODY_LIMIT]
    try:
        text: str | None = body.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    return json.dumps({
        "request": {"method": params["method"], "url": params["url"],
                    "headers": {k: v for k, v in headers.items() if k.lower() != "authorization"}},
        "response": {"status": response.status_code, "headers": dict(response.headers),
                     "body": text, "body_truncated": len(response.content) > REPORT_BODY_LIMIT,
                     "elapsed_ms": elapsed_ms},
    }, indent=2).encode()
