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
import re
import time
from collections.abc import Iterator
from typing import Annotated, Any

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
from validation import WHOLE_NUMBER, SchemaPattern, SecretRef, StorableJson, Text

logger = logging.getLogger(__name__)

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
REPORT_BODY_LIMIT = KEEP_BYTES


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
# An absolute http(s) URL with a host: a DNS name (labels of letters, digits, "_" and "-"; an
# internationalised name in its xn-- form; the last label not a number, which resolvers would
# read as an IPv4 address), a dotted-quad IPv4 address, or a bracketed IPv6 address; a port up
# to 65535; no user-info, no backslash, no spaces or control characters: where URL parsers
# disagree. Everything this admits the egress guard parses the same way (egress.url), so a step
# never fails later on a URL that enqueue accepted. Other IPv4 forms (2130706433, 0x7f.1, 127.1)
# are refused here: the one form is enough, and the others are how allowlists get fooled.
_PORT = "(?:6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3})"
_END = "(?=[:/?#]|$)"
_LABEL = "[A-Za-z0-9_-]{1,63}"
_NAME = (f"(?=[^:/?#]{{1,254}}{_END})(?:{_LABEL}\\.)*"
         f"(?!(?:0[Xx][0-9A-Fa-f]*|[0-9]+)\\.?{_END}){_LABEL}\\.?")
_IPV4 = f"{_OCTET}(?:\\.{_OCTET}){{3}}"
# Path, query and fragment: printable ASCII but "%" and "\\", and %XX escapes (anything else
# is written percent-encoded).
_REST = "(?:[!-$&-\\[\\]-~]|%[0-9A-Fa-f]{2})"
URL_PATTERN = ("^" + _any_case("http") + "[Ss]?://"
               f"(?:{_IPV4}{_END}|{_NAME}{_END}|\\[(?:{_IPV6})\\])"
               f"(?::{_PORT})?(?:[/?#]{_REST}*)?$")


def _method(value: str) -> str:
    if not re.fullmatch(METHOD_PATTERN, value):
        raise PydanticCustomError("http_method", "must be one of {methods} (any case)",
                                  {"methods": ", ".join(METHODS)})
    return value.upper()


def _url(value: str) -> str:
    """The pattern the document states, then the egress guard's own parse (the one that decides
    what is sent; ``egress.policy``), so a URL that passes here is one the step can send."""
    problem = "must be an absolute http:// or https:// URL with a host (no user-info, no spaces)"
    if not re.fullmatch(URL_PATTERN, value):
        raise PydanticCustomError("http_url", problem)
    try:
        validate_url(value, "url")
    except SpecInvalid as exc:
        raise PydanticCustomError("http_url", "{problem}", {"problem": exc.problem}) from None
    return value


# What the egress client sends as a header (egress.client.header_problem), as the document states
# it: a token name that JCT does not set itself; a Latin-1 value without control characters or
# surrounding blanks.
_RESERVED = "|".join(_any_case(name).replace("[--]", "-") for name in
                     ("host", "content-length", "transfer-encoding", "connection"))
HEADER_NAME_PATTERN = f"^(?!(?:{_RESERVED})$)[!#$%&'*+.^_`|~0-9A-Za-z-]+$"
HEADER_VALUE_PATTERN = "^(?:[!-~\\x80-\\xff](?:[\\t -~\\x80-\\xff]*[!-~\\x80-\\xff])?)?$"
HeaderName = Annotated[str, SchemaPattern(HEADER_NAME_PATTERN)]
HeaderValue = Annotated[str, SchemaPattern(HEADER_VALUE_PATTERN)]


def _header_values(headers: dict[str, Any]) -> dict[str, Any]:
    for name, value in headers.items():
        wrong = header_problem(name, "x" if isinstance(value, SecretRef) else value)
        if wrong is not None:
            raise PydanticCustomError("http_header", "{problem}", {"problem": wrong})
    return headers


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
    url: Annotated[Text, AfterValidator(_url), SchemaPattern(URL_PATTERN)] | SecretRef = Field(
        description="Checked against JCT_HTTP_ALLOWED_HOSTS when the step runs; may be a secret "
                    "reference.")
    headers: Annotated[dict[HeaderName, HeaderValue | SecretRef],
                       AfterValidator(_header_values)] = Field(
        {}, description="Sent as given, with the trace headers; a value may be a secret "
                        "reference.")
    json_: StorableJson = Field(None, alias="json", description="Any JSON value, sent as the "
                                "body; secret references may stand anywhere in it.")
    # Absent means no body; an explicit null is refused, as a non-string is.
    body: Text | SecretRef = Field(None, description="A text body (or a secret reference); give "  # type: ignore[assignment]
                                   "`json` or `body`, not both.", json_schema_extra=_no_default)
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
        return {"method": self.method, "url": _plain(self.url),
                "headers": {name: _plain(value) for name, value in self.headers.items()},
                "json": self.json_, "has_json": "json_" in self.model_fields_set,
                "body": _plain(self.body), "timeout_s": self.timeout_s,
                "expect_status": self.expect_status}


def _plain(value: Any) -> Any:
    """A reference as the ``{"secret": name}`` it was given as, anything else as it is."""
    return value.model_dump() if isinstance(value, SecretRef) else value


class HttpAction:
    name = "http"
    params_model = HttpParams

    def validate(self, params: dict[str, Any], where: str) -> dict[str, Any]:
        find_refs(params, where)  # a malformed reference anywhere names its field
        return validate_params(HttpParams, params, where)

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


def _check_status(status: int, expected: list[int] | None) -> None:
    ok = status in expected if expected else 200 <= status < 300
    if ok:
        return
    wanted = expected if expected else "2xx"
    message = f"downstream answered {status}, expected {wanted}"
    if status >= 500 or status == 429:
        raise RetryableActionError(message)
    raise PermanentActionError(message)


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
