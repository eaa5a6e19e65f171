"""Trace context: the context variables, and parsing/formatting of trace ids and ``traceparent``.

The edges (Flask request, Dramatiq message) bind these once; the logging filter and outgoing
calls read them. Nothing else passes a trace id around just to log it. The carriers (HTTP
headers, message options) are read and written in one place: ``extract`` and ``inject``.
"""

from __future__ import annotations

import re
import secrets
import sys
import uuid
from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from contextvars import ContextVar, Token
from dataclasses import dataclass
from typing import Protocol

from errors import InvalidTraceId

trace_id_var: ContextVar[str | None] = ContextVar("trace_id", default=None)
task_id_var: ContextVar[str | None] = ContextVar("task_id", default=None)
job_id_var: ContextVar[str | None] = ContextVar("job_id", default=None)
# The caller's span as the message's ``traceparent`` named it: the attempt's span is its child.
# Not a log field, so not in ``_VARS``.
remote_parent_var: ContextVar[str | None] = ContextVar("remote_parent", default=None)

_VARS = {"trace_id": trace_id_var, "task_id": task_id_var, "job_id": job_id_var}
_BINDABLE = {**_VARS, "remote_parent": remote_parent_var}

_HEX32 = re.compile(r"^[0-9a-f]{32}$")
_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$")


def new_trace_id() -> str:
    """A fresh UUIDv4 in canonical lowercase form."""
    return str(uuid.uuid4())


def new_span_id() -> str:
    """A fresh, non-zero 16-hex span id for one outgoing call."""
    while True:
        span = secrets.token_hex(8)
        if span != "0" * 16:
            return span


def canonical_trace_id(raw: str) -> str:
    """Canonicalise a UUID given in any case, hyphenated or as 32 hex; else ``InvalidTraceId``."""
    text = raw.strip()
    compact = text.replace("-", "").lower()
    hyphenated_ok = len(text) == 36 and [len(p) for p in text.split("-")] == [8, 4, 4, 4, 12]
    if not _HEX32.match(compact) or not (len(text) == 32 or hyphenated_ok):
        raise InvalidTraceId(
            "X-Trace-Id must be a UUID (8-4-4-4-12 or 32 hex digits)", detail={"value": raw[:100]}
        )
    return str(uuid.UUID(hex=compact))


def _parse_traceparent(header: str) -> tuple[str, str] | None:
    """``(trace id as a UUID, span id)`` of a valid W3C ``traceparent``; else ``None``."""
    match = _TRACEPARENT.match(header.strip())  # W3C: lowercase hex only, else invalid
    if match is None:
        return None
    version, trace_hex, span_hex, _flags, rest = match.groups()
    if version == "ff" or (version == "00" and rest):
        return None
    if trace_hex == "0" * 32 or span_hex == "0" * 16:
        return None
    return str(uuid.UUID(hex=trace_hex)), span_hex


def trace_id_from_traceparent(header: str) -> str | None:
    """The trace id of a valid W3C ``traceparent`` as a UUID; ``None`` for an invalid one."""
    parsed = _parse_traceparent(header)
    return parsed[0] if parsed else None


def format_traceparent(trace_id: str, span_id: str | None = None) -> str:
    """``00-<trace as 32 hex>-<span>-01`` with a new span id unless one is given."""
    return f"00-{uuid.UUID(trace_id).hex}-{span_id or new_span_id()}-01"


class Carrier(Protocol):
    """Anything with a (preferably case-insensitive) ``get``: werkzeug headers, a dict."""

    def get(self, key: str, /) -> str | None: ...


@dataclass(frozen=True)
class CarrierFormat:
    """Where a carrier keeps the trace: its id under ``trace_key`` and a W3C ``traceparent``."""

    trace_key: str
    parent_key: str = "traceparent"


HEADERS = CarrierFormat("X-Trace-Id")    # HTTP requests, in and out
MESSAGE = CarrierFormat("trace_id")      # Dramatiq message options


@dataclass(frozen=True)
class TraceContext:
    """What a carrier said: the trace id, and the caller's span id when a ``traceparent``
    named one."""

    trace_id: str
    parent_span_id: str | None = None


def inject(carrier: MutableMapping[str, str], fmt: CarrierFormat = HEADERS, *,
           trace_id: str | None = None, span_id: str | None = None) -> None:
    """Write the trace into ``carrier``: the given trace (else the bound one; with neither,
    nothing is written) and a ``traceparent`` naming ``span_id``, else the active
    OpenTelemetry span of that trace (the dispatch, the action), else a new span id."""
    trace_id = trace_id or trace_id_var.get()
    if trace_id is None:
        return
    carrier[fmt.trace_key] = trace_id
    carrier[fmt.parent_key] = format_traceparent(trace_id, span_id or active_span_id(trace_id))


def active_span_id(trace_id: str) -> str | None:
    """The active OpenTelemetry span's id when that span belongs to ``trace_id``."""
    # OpenTelemetry is optional (requirements-otel.txt) and imported only when spans are on
    # (observability.otel): not imported, no span can be active, and no process pays for it.
    otel_trace = sys.modules.get("opentelemetry.trace")
    if otel_trace is None:
        return None
    active = otel_trace.get_current_span().get_span_context()
    if not active.is_valid or active.trace_id != uuid.UUID(trace_id).int:
        return None
    return f"{active.span_id:016x}"


def current_traceparent() -> str | None:
    """The ``traceparent`` for a call made now (the command action's ``TRACEPARENT``): the
    bound trace and the active span (a new span id when OpenTelemetry is off); ``None`` when no
    trace is bound."""
    trace_id = trace_id_var.get()
    return format_traceparent(trace_id, active_span_id(trace_id)) if trace_id else None


def extract(carrier: Carrier | Mapping[str, str], fmt: CarrierFormat = HEADERS) -> TraceContext | None:
    """Read the trace a carrier holds: its trace id (validated: ``InvalidTraceId`` when present
    but not a UUID), else a valid ``traceparent``'s trace (an invalid one is ignored, as W3C
    says), else ``None``."""
    given = carrier.get(fmt.trace_key)
    parent = carrier.get(fmt.parent_key) or ""
    parsed = _parse_traceparent(parent) if parent else None
    if given is not None:
        trace_id = canonical_trace_id(given)
        span = parsed[1] if parsed and parsed[0] == trace_id else None
        return TraceContext(trace_id, span)
    if parsed is not None:
        return TraceContext(*parsed)
    return None


def trace_id_from_headers(headers: Carrier | Mapping[str, str]) -> str:
    """The edge rule: ``X-Trace-Id`` (validated), else a valid ``traceparent``, else a new id."""
    found = extract(headers, HEADERS)
    return found.trace_id if found else new_trace_id()


def current() -> dict[str, str]:
    """The bound context fields that are set, for log records and message options."""
    return {name: value for name, var in _VARS.items() if (value := var.get()) is not None}


def bind_values(**values: str | None) -> list[tuple[ContextVar[str | None], Token[str | None]]]:
    """Bind fields; returns tokens for ``unbind``. Unknown names are a programming error."""
    return [(_BINDABLE[name], _BINDABLE[name].set(value)) for name, value in values.items()]


def unbind(tokens: list[tuple[ContextVar[str | None], Token[str | None]]]) -> None:
    for var, token in reversed(tokens):
        var.reset(token)


@contextmanager
def bound(**values: str | None) -> Iterator[None]:
    """Bind fields for the duration of a block."""
    tokens = bind_values(**values)
    try:
        yield
    finally:
        unbind(tokens)
