"""``http``: a real downstream call through the egress guard, carrying ``X-Trace-Id`` and a
``traceparent`` with a fresh span id; the response is kept as a ``report`` artifact.

The URL, header values and the body may be secret references (``{"secret": "name"}``; in
``json`` anywhere). They are resolved at run time from ``ctx.secrets``; the values are hidden
from the report, the log lines and error messages. The URL is checked against ``ctx.egress``
(``egress.policy.check_url``) and the call goes to the checked address
(``egress.client.request``) under one deadline: the earlier of the step's ``timeout_s`` and
the attempt's.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Iterator
from typing import Any

import tracing
from actions.base import ActionContext, ActionResult, reject_unknown, require_number, require_str
from credentials import find_refs, is_secret_ref
from egress.client import KEEP_BYTES, EgressResponse, header_problem, request
from egress.policy import check_url, validate_url
from errors import (
    ActionError,
    ActionTimeout,
    JctError,
    PermanentActionError,
    ResponseTooLarge,
    RetryableActionError,
    SpecInvalid,
)
from logging_setup import log_event
from redaction import MASK, redact_headers, redact_text, redact_url, redact_value, sensitive_values

logger = logging.getLogger(__name__)

METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"}
REPORT_BODY_LIMIT = KEEP_BYTES


class HttpAction:
    name = "http"

    def validate(self, params: dict[str, Any], where: str) -> dict[str, Any]:
        reject_unknown(params, {"method", "url", "headers", "json", "body", "timeout_s",
                                "expect_status"}, where)
        find_refs(params, where)  # a malformed reference anywhere names its field
        method = require_str(params, "method", where, required=False, default="GET").upper()
        if method not in METHODS:
            raise SpecInvalid(f"{where}.method", f"must be one of {sorted(METHODS)}")
        url = params.get("url")
        if not is_secret_ref(url):
            validate_url(require_str(params, "url", where), f"{where}.url")
        if "json" in params and "body" in params:
            raise SpecInvalid(f"{where}.body", "give json or body, not both")
        if "body" in params and not (isinstance(params["body"], str) or is_secret_ref(params["body"])):
            raise SpecInvalid(f"{where}.body", "must be a string or a secret reference")
        return {
            "method": method, "url": url, "headers": _headers(params.get("headers", {}), where),
            "json": params.get("json"), "has_json": "json" in params, "body": params.get("body"),
            "timeout_s": require_number(params, "timeout_s", where, minimum=0.1, maximum=3600,
                                        default=30),
            "expect_status": _expect_status(params.get("expect_status"), f"{where}.expect_status"),
        }

    def run(self, params: dict[str, Any], ctx: ActionContext) -> ActionResult:
        ctx.check()
        resolved, secrets = ctx.secrets.resolve(params)
        secrets |= sensitive_values(params)
        with _hidden(ctx, secrets):
            try:
                return _call(resolved, ctx, secrets, url_secret=is_secret_ref(params["url"]))
            except JctError as exc:
                if not secrets:
                    raise
                raise _scrubbed(exc, secrets) from None


def _call(params: dict[str, Any], ctx: ActionContext, secrets: set[str], *,
          url_secret: bool) -> ActionResult:
    dest = check_url(params["url"], ctx.egress_policy())
    headers = dict(params["headers"])
    tracing.inject(headers)
    body = _body(params, headers)
    # A URL given as a secret is shown as a whole mask: its rebuilt form may differ from the
    # value, and any part of it (a webhook path) may be the secret.
    shown_url = MASK if url_secret else redact_url(redact_text(dest.url, secrets))
    step_deadline = time.monotonic() + params["timeout_s"]
    deadline = step_deadline if ctx.deadline is None else min(step_deadline, ctx.deadline)
    log_event(logger, "http_request", f"{params['method']} {shown_url}", method=params["method"],
              url=shown_url, traceparent=headers.get("traceparent"))
    try:
        response = request(dest, params["method"], headers, body, deadline=deadline,
                           max_body_bytes=ctx.max_response_bytes, keep_bytes=REPORT_BODY_LIMIT,
                           should_stop=ctx.stop_reason, poll_s=ctx.poll_s)
    except ActionTimeout:
        if deadline == step_deadline:
            raise RetryableActionError(f"downstream timed out after {params['timeout_s']:.1f}s: "
                                       f"{shown_url}") from None
        raise ActionTimeout("timeout: the attempt ran past the task's timeout_s") from None
    except ResponseTooLarge as exc:
        if isinstance(exc.response, EgressResponse):
            exc.result = _result(params, shown_url, headers, exc.response, secrets)
        raise
    log_event(logger, "http_response", f"{response.status} from {shown_url}",
              status=response.status, elapsed_ms=response.elapsed_ms)
    result = _result(params, shown_url, headers, response, secrets)
    try:
        _check_status(response.status, params["expect_status"])
    except ActionError as exc:
        exc.result = result  # the response is evidence: keep it with the failure
        raise
    return result


def _body(params: dict[str, Any], headers: dict[str, str]) -> bytes | None:
    if params["has_json"]:
        if not any(name.lower() == "content-type" for name in headers):
            headers["Content-Type"] = "application/json"
        try:
            return json.dumps(params["json"], allow_nan=False).encode()
        except ValueError as exc:
            raise PermanentActionError(f"json cannot be sent: {exc}") from None
    if params["body"] is not None:
        return str(params["body"]).encode()
    return None


def _result(params: dict[str, Any], shown_url: str, headers: dict[str, str],
            response: EgressResponse, secrets: set[str]) -> ActionResult:
    return ActionResult(output={"status": response.status, "elapsed_ms": response.elapsed_ms},
                        downstream_status=response.status,
                        report=_report(params["method"], shown_url, headers, response, secrets),
                        report_name="http-response.json")


@contextlib.contextmanager
def _hidden(ctx: ActionContext, secrets: set[str]) -> Iterator[None]:
    """While the call runs, the log scrubber hides the resolved values."""
    if ctx.secret_registry is None or not secrets:
        yield
        return
    with ctx.secret_registry.active(secrets):
        yield


def _scrubbed(exc: JctError, secrets: set[str]) -> JctError:
    """``exc`` with any secret value in its message replaced (a downstream or socket error
    can quote what was sent)."""
    message = str(exc)
    clean = redact_text(message, secrets)
    if clean != message:
        exc.args = (clean,)
        if isinstance(exc.detail, str):
            exc.detail = redact_text(exc.detail, secrets)
    return exc


def _headers(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise SpecInvalid(f"{where}.headers", "must be an object of string values or secret references")
    for name, header in value.items():
        field = f"{where}.headers.{name}"
        if is_secret_ref(header):
            problem = header_problem(name, "x")
        elif isinstance(header, str):
            problem = header_problem(name, header)
        else:
            problem = "must be a string or a secret reference"
        if problem is not None:
            raise SpecInvalid(field, problem)
    return value


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


def _report(method: str, shown_url: str, headers: dict[str, str], response: EgressResponse,
            secrets: set[str]) -> bytes:
    text = _text(response.body_head, response.truncated)
    report = {
        "request": {"method": method, "url": shown_url,
                    "headers": redact_headers(headers)},
        "response": {"status": response.status, "headers": redact_headers(response.headers),
                     "body": text, "body_truncated": response.truncated,
                     "body_size": response.body_size, "elapsed_ms": response.elapsed_ms},
    }
    return redact_text(json.dumps(redact_value(report, secrets), indent=2), secrets).encode()


def _text(head: bytes, truncated: bool) -> str | None:
    """The kept body as UTF-8 text (a character cut by the size limit is dropped), or None."""
    for cut in range(4 if truncated else 1):
        try:
            return head[:len(head) - cut].decode("utf-8")
        except UnicodeDecodeError:
            continue
    return None
