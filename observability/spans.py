"""OpenTelemetry spans for the task's path, under the JCT trace id.

The path is: the API request (server span) → dispatch (producer span; the wake-up message's
``traceparent`` names it) → the attempt (consumer span, child of that dispatch) → each action
(client span; an outgoing ``traceparent`` names it). A retry is dispatched from inside the
failed attempt's span, so every attempt of a task stays in one trace.

The trace id is always the JCT trace id: a span joins the active span only when that span is
in the bound trace, and otherwise starts a root whose trace id the id generator takes from the
bound trace id (``observability.otel.JctIdGenerator``). ``Spans()`` without a tracer (OTel off
or not installed) does nothing and costs nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import tracing

Attributes = Mapping[str, str | int | float | bool]


class ActiveSpan:
    """A started span, current in this context until ``end``."""

    def __init__(self, span: Any = None, token: object = None) -> None:
        self._span, self._token = span, token

    @property
    def recording(self) -> bool:
        return self._span is not None

    def set(self, attributes: Attributes) -> None:
        if self._span is not None:
            self._span.set_attributes(dict(attributes))

    def end(self, error: str | BaseException | None = None) -> None:
        """End the span (``error``: its status is ERROR with that description) and make its
        parent current again."""
        if self._span is None:
            return
        from opentelemetry import context
        from opentelemetry.trace import Status, StatusCode

        if isinstance(error, BaseException):
            self._span.record_exception(error)
        if error is not None:
            self._span.set_status(Status(StatusCode.ERROR, str(error)[:500]))
        self._span.end()
        context.detach(self._token)  # type: ignore[arg-type]
        self._span = None


class Spans:
    """Starts JCT's spans with ``tracer`` (an OpenTelemetry tracer), or does nothing."""

    def __init__(self, tracer: Any = None, provider: Any = None) -> None:
        self._tracer, self._provider = tracer, provider

    @property
    def on(self) -> bool:
        return self._tracer is not None

    def close(self) -> None:
        """Export what is buffered: a worker process ends with ``os._exit``, which runs no
        exit hook."""
        if self._provider is not None:
            self._provider.shutdown()
            self._tracer = self._provider = None

    def start(self, name: str, kind: str = "internal", *, parent_span_id: str | None = None,
              attributes: Attributes | None = None) -> ActiveSpan:
        """Start a span of ``kind`` (server, client, producer, consumer, internal) and make it
        current. ``parent_span_id``: the caller's span in the bound trace, as a ``traceparent``
        named it (a request's, a message's)."""
        if self._tracer is None:
            return ActiveSpan()
        from opentelemetry import context, trace

        span = self._tracer.start_span(name, context=_parent(parent_span_id),
                                       kind=getattr(trace.SpanKind, kind.upper()),
                                       attributes=dict(attributes or {}))
        return ActiveSpan(span, context.attach(trace.set_span_in_context(span)))

    @contextmanager
    def span(self, name: str, kind: str = "internal", *, parent_span_id: str | None = None,
             attributes: Attributes | None = None) -> Iterator[ActiveSpan]:
        """``start`` for a block: an exception ends it with status ERROR and goes on."""
        active = self.start(name, kind, parent_span_id=parent_span_id, attributes=attributes)
        try:
            yield active
        except BaseException as exc:
            active.end(exc)
            raise
        active.end()


def _parent(parent_span_id: str | None) -> Any:
    """The context a new span starts in: the caller's remote span, else the active span when
    it is in the bound trace, else none (a root, with the bound trace id)."""
    from opentelemetry import trace
    from opentelemetry.context import Context

    trace_id = tracing.trace_id_var.get()
    if trace_id is None:
        return None  # nothing bound: OpenTelemetry's own rules
    trace_int = uuid.UUID(trace_id).int
    if parent_span_id is not None:
        remote = trace.SpanContext(trace_id=trace_int, span_id=int(parent_span_id, 16),
                                   is_remote=True, trace_flags=trace.TraceFlags(1))
        return trace.set_span_in_context(trace.NonRecordingSpan(remote), Context())
    current = trace.get_current_span().get_span_context()
    if current.is_valid and current.trace_id == trace_int:
        return None
    return Context()
