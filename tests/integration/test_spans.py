"""OpenTelemetry spans follow one task under its JCT trace id: the enqueue request (server) →
dispatch (producer; the message's traceparent names it) → attempt (consumer, in a real
Dramatiq worker with JCT's middleware) → action (client; the downstream server receives a
traceparent naming it). A retried task's attempts stay in the same trace.

The spans go to the SDK's in-memory exporter; nothing here needs a collector."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from dramatiq import Worker
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from actors.process import prepare
from app import create_app
from config import load_settings
from harness.downstream import Downstream, start_downstream
from harness.wait import wait_until
from models.views import get_task
from observability.otel import spans_from, tracer_provider
from runtime import Runtime


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def traced(rt: Runtime, base_env: dict[str, str], exporter: InMemorySpanExporter) -> Iterator[Runtime]:
    """A worker runtime (own queue, quick retries) whose spans go to ``exporter``, with JCT's
    middleware and actor on its broker and a Dramatiq worker running them."""
    provider = tracer_provider("test")
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    settings = load_settings({**base_env, "JCT_QUEUE": f"jct_spans_{uuid.uuid4().hex[:8]}",
                              "JCT_RETRY_BACKOFF_S": "0.05"})
    current = Runtime(settings, component="worker", attempt_logs=rt.attempt_logs,
                      spans=spans_from(provider))
    worker = Worker(prepare(current), queues={settings.queue}, worker_threads=1, worker_timeout=100)
    worker.start()
    yield current
    worker.stop()
    current.close()


@pytest.fixture
def downstream() -> Iterator[Downstream]:
    server = start_downstream()
    yield server
    server.stop()


def _enqueue(rt: Runtime, spec: dict[str, Any]) -> tuple[str, str]:
    """Through the HTTP edge, as a client would: (task id, trace id)."""
    response = create_app(rt).test_client().post("/enqueue", json=spec)
    assert response.status_code == 202, response.get_json()
    body = response.get_json()
    return body["task_id"], body["trace_id"]


def _finished(rt: Runtime, task_id: str) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        with rt.db.connection():
            task = get_task(rt.db, task_id)
        return task if task and task["status"] in ("done", "failed") else None

    return wait_until(done, timeout=30, interval=0.05, what=f"task {task_id} finished")


def _spans(exporter: InMemorySpanExporter, trace_id: str, count: int) -> list[Any]:
    """The finished spans of ``trace_id`` once there are ``count`` (the worker ends the
    attempt span just after the task's row says done)."""
    def ended() -> list[Any] | None:
        found = [s for s in exporter.get_finished_spans()
                 if s.context.trace_id == uuid.UUID(trace_id).int]
        return found if len(found) >= count else None

    return wait_until(ended, timeout=10, interval=0.05, what=f"{count} spans of {trace_id} "
                      f"{[(s.name, hex(s.context.trace_id)) for s in exporter.get_finished_spans()]}")


def _by_name(spans: list[Any], name: str) -> list[Any]:
    return sorted((s for s in spans if s.name == name), key=lambda s: s.start_time)


def test_one_task_gives_the_span_tree_under_its_trace_id(traced: Runtime, exporter: InMemorySpanExporter,
                                                         downstream: Downstream) -> None:
    """Request → dispatch → attempt → actions, every span with the JCT trace id, each the
    parent of the next; the downstream call's traceparent names the http action's span."""
    task_id, trace_id = _enqueue(traced, {"name": "traced", "steps": [
        {"action": "echo", "params": {"message": "hi"}},
        {"action": "http", "params": {"url": downstream.url + "/hook"}}]})
    assert _finished(traced, task_id)["status"] == "done"
    spans = _spans(exporter, trace_id, 5)

    (request,) = _by_name(spans, "POST /enqueue")
    (dispatch,) = _by_name(spans, "jct dispatch")
    (attempt,) = _by_name(spans, "jct attempt")
    (echo,) = _by_name(spans, "jct action echo")
    (http,) = _by_name(spans, "jct action http")
    assert {s.context.trace_id for s in spans} == {uuid.UUID(trace_id).int}
    assert request.parent is None and request.kind is SpanKind.SERVER
    assert dispatch.parent.span_id == request.context.span_id and dispatch.kind is SpanKind.PRODUCER
    assert attempt.parent.span_id == dispatch.context.span_id and attempt.kind is SpanKind.CONSUMER
    assert attempt.parent.is_remote, "the attempt's parent came through the message"
    assert attempt.attributes["jct.task_id"] == task_id
    assert attempt.attributes["jct.outcome"] == "done"
    for action in (echo, http):
        assert action.parent.span_id == attempt.context.span_id and action.kind is SpanKind.CLIENT

    (hook,) = downstream.received("/hook")
    assert hook.headers["traceparent"] == (
        f"00-{uuid.UUID(trace_id).hex}-{http.context.span_id:016x}-01")
    assert hook.headers["X-Trace-Id"] == trace_id


def test_a_retried_task_keeps_its_attempts_in_one_trace(traced: Runtime,
                                                        exporter: InMemorySpanExporter) -> None:
    """The retry is dispatched from inside the failed attempt: attempt 2 is a child of that
    dispatch, in the same trace, and both attempts say how they ended."""
    task_id, trace_id = _enqueue(traced, {"name": "flaky", "max_attempts": 2, "steps": [
        {"action": "fail", "params": {"message": "flaky", "retryable": True}}]})
    assert _finished(traced, task_id)["status"] == "failed"
    spans = _spans(exporter, trace_id, 7)

    first, second = _by_name(spans, "jct attempt")
    enqueue_dispatch, retry_dispatch = _by_name(spans, "jct dispatch")
    assert {s.context.trace_id for s in spans} == {uuid.UUID(trace_id).int}
    assert first.parent.span_id == enqueue_dispatch.context.span_id
    assert retry_dispatch.parent.span_id == first.context.span_id
    assert second.parent.span_id == retry_dispatch.context.span_id
    assert (first.attributes["jct.outcome"], second.attributes["jct.outcome"]) == ("retry", "failed")
    assert not first.status.is_ok and not second.status.is_ok


def test_a_commands_traceparent_names_its_action_span(traced: Runtime,
                                                      exporter: InMemorySpanExporter) -> None:
    """The sandboxed command gets ``TRACEPARENT`` naming the command action's span, so the
    tools it runs carry the trace on under the right parent."""
    task_id, trace_id = _enqueue(traced, {"name": "traced-command", "steps": [
        {"action": "command", "params": {"shell": 'echo "tp=$TRACEPARENT"'}}]})
    task = _finished(traced, task_id)
    assert task["status"] == "done", task
    spans = _spans(exporter, trace_id, 4)
    (command,) = _by_name(spans, "jct action command")
    (step,) = task["actions"]
    assert f"tp=00-{uuid.UUID(trace_id).hex}-{command.context.span_id:016x}-01" in step["output_tail"]
