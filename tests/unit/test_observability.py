"""The optional parts of observability degrade as documented: spans off when no OTLP endpoint
is set, or (with a log line) when OpenTelemetry is not installed; the traceparent handed to a
command names the active span when there is one."""

from __future__ import annotations

import logging
import sys
import uuid

import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import tracing
from observability.otel import build_spans, spans_from, tracer_provider

EXPORTER_MODULE = "opentelemetry.exporter.otlp.proto.http.trace_exporter"


def test_without_an_endpoint_there_are_no_spans() -> None:
    spans = build_spans("api", enabled=False)
    assert not spans.on
    with spans.span("nothing") as span:
        assert not span.recording


def test_an_endpoint_without_the_packages_logs_once_and_turns_spans_off(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setitem(sys.modules, EXPORTER_MODULE, None)  # import raises ImportError
    with caplog.at_level(logging.WARNING):
        spans = build_spans("worker", enabled=True)
    assert not spans.on
    (record,) = [r for r in caplog.records if getattr(r, "event", None) == "otel_unavailable"]
    assert "requirements-otel.txt" in record.getMessage()


def test_a_root_span_takes_the_bound_trace_id_and_names_the_traceparent() -> None:
    exporter = InMemorySpanExporter()
    provider = tracer_provider("test")
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    spans = spans_from(provider)
    trace_id = tracing.new_trace_id()
    with tracing.bound(trace_id=trace_id), spans.span("jct action command", "client"):
        header = tracing.current_traceparent()
    (span,) = exporter.get_finished_spans()
    assert span.context.trace_id == uuid.UUID(trace_id).int
    assert header == f"00-{uuid.UUID(trace_id).hex}-{span.context.span_id:016x}-01"
    with tracing.bound(trace_id=trace_id):  # no active span: a fresh span id, same trace
        assert tracing.current_traceparent().split("-")[1] == uuid.UUID(trace_id).hex  # type: ignore[union-attr]
    assert tracing.current_traceparent() is None
