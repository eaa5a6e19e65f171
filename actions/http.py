"""``http``: a real downstream call with ``requests``, carrying ``X-Trace-Id`` and a
``traceparent`` with a fresh span id; the response is kept as a ``report`` artifact."""

from __future__ import annotations

import json
import logging
import re
import time
from typing import Annotated, Any
from urllib.parse import urlparse, urlsplit

import requests
from pydantic import (
    AfterValidator,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

import tracing
from actions.base import ActionContext, ActionParams, ActionResult, validate_params
from errors import ActionError, PermanentActionError, RetryableActionError
from logging_setup import log_event
from validation import WHOLE_NUMBER, SchemaPattern, StorableJson, Text

logger = logging.getLogger(__name__)

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
REPORT_BODY_LIMIT = 256 * 1024


def _any_case(word: str) -> str:
    return "".join(f"[{c.upper()}{c.lower()}]" for c in word)


METHOD_PATTERN = "^(?:" + "|".join(_any_case(m) for m in METHODS) + ")$"

_H16 = "[0-9A-Fa-f]{1,4}"
_OCTET = "(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
_LS32 = f"(?:{_H16}:{_H16}|{_OCTET}(?:\\.{_OCTET}){{3}})"
# RFC 3986's IPv6address: six groups and ls32, or "::" with up to i groups before it.
_IPV6 = "|".join([f"(?:{_H16}:){{6}}{_LS32}", *(
    f"(?:(?:{_H16}:){{0,{i}}}{_H16})?::{after}" for i, after in enumerate([
        f"(?:{_H16}:){{4}}{_LS32}", f"(?:{_H16}:){{3}}{_LS32}", f"(?:{_H16}:){{2}}{_LS32}",
        f"{_H16}:{_LS32}", _LS32, _H16, ""]))])
# An absolute http(s) URL with a host: an ASCII name (RFC 3986 reg-name characters but "%", not
# starting with "." or "*"; an internationalised name in its xn-- form) or a bracketed IPv6
# address, a port up to 65535; no user-info, no backslash, no spaces or control characters:
# where URL parsers disagree, and what urllib or requests would refuse only when the step runs.
_PORT = "(?:6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[0-9]{1,4})"
URL_PATTERN = ("^" + _any_case("http") + "[Ss]?://"
               f"(?:[A-Za-z0-9_~!$&'()+,;=-][A-Za-z0-9._~!$&'()*+,;=-]*|\\[(?:{_IPV6})\\])"
               f"(?::{_PORT})?(?:[/?#][^\\x00-\\x20\\x7f]*)?$")


def _method(value: str) -> str:
    if not re.fullmatch(METHOD_PATTERN, value):
        raise PydanticCustomError("http_method", "must be one of {methods} (any case)",
                                  {"methods": ", ".join(METHODS)})
    return value.upper()


def _url(value: str) -> str:
    problem = "must be an absolute http:// or https:// URL with a host (no user-info, no spaces)"
    if not re.fullmatch(URL_PATTERN, value):
        raise PydanticCustomError("http_url", problem)
    try:
        host = urlsplit(value).hostname
    except ValueError as exc:  # e.g. a bracketed host that is not an IPv6 address
        raise PydanticCustomError("http_url", "{problem}: {reason}",
                                  {"problem": problem, "reason": str(exc)}) from None
    if not host:
        raise PydanticCustomError("http_url", problem)
    return value


def _one_or_many(value: Any) -> Any:
    return [value] if isinstance(value, int | float) and not isinstance(value, bool) else value


def _no_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)  # absent means "no body"; null is not a body


Status = Annotated[int, Field(ge=100, le=599), WHOLE_NUMBER]
Statuses = Annotated[list[Status], Field(min_length=1)]


class HttpParams(ActionParams):
    """Params of `http`: one downstream call carrying the trace headers; the response is kept
    as a report artifact."""

    model_config = ConfigDict(json_schema_extra={"not": {"required": ["json", "body"]}})

    method: Annotated[str, AfterValidator(_method), SchemaPattern(METHOD_PATTERN)] = Field(
        "GET", description="Any case; sent upper-case.")
    url: Annotated[Text, AfterValidator(_url), SchemaPattern(URL_PATTERN)] = Field(
        description="Checked against JCT_HTTP_ALLOWED_HOSTS when the step runs.")
    headers: dict[Text, Text] = Field({}, description="Sent as given, with the trace headers.")
    json_: StorableJson = Field(None, alias="json", description="Any JSON value, sent as the body.")
    # Absent means no body; an explicit null is refused, as a non-string is.
    body: Text = Field(None, description="A text body; give `json` or `body`, not both.",  # type: ignore[assignment]
                       json_schema_extra=_no_default)
    timeout_s: float = Field(30.0, ge=0.1, le=3600, description="Also bounded by the task's "
                             "`timeout_s`.")
    expect_status: Annotated[Statuses | None, BeforeValidator(
        _one_or_many, json_schema_input_type=Status | Statuses | None)] = Field(
        None, description="The status(es) that count as success; default any 2xx.")

    @model_validator(mode="after")
    def _json_or_body(self) -> HttpParams:
        if {"json_", "body"} <= self.model_fields_set:
            raise ValidationError.from_exception_data(type(self).__name__, [InitErrorDetails(
                type=PydanticCustomError("json_and_body", "give json or body, not both"),
                loc=("body",), input=self.body)])
        return self

    def normalised(self) -> dict[str, Any]:
        return {"method": self.method, "url": self.url, "headers": self.headers,
                "json": self.json_, "has_json": "json_" in self.model_fields_set,
                "body": self.body, "timeout_s": self.timeout_s,
                "expect_status": self.expect_status}


class HttpAction:
    name = "http"
    params_model = HttpParams

    def validate(self, params: dict[str, Any], where: str) -> dict[str, Any]:
        return validate_params(HttpParams, params, where)

    def run(self, params: dict[str, Any], ctx: ActionContext) -> ActionResult:
        ctx.check()
        host = (urlparse(params["url"]).hostname or "").lower()
        if "*" not in ctx.allowed_hosts and host not in ctx.allowed_hosts:
            raise PermanentActionError(f"host {host!r} is not in JCT_HTTP_ALLOWED_HOSTS")
        headers = {**params["headers"], **tracing.outgoing_headers()}
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
