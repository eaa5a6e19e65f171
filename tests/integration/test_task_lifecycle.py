"""The service layer end to end in one process, on real PostgreSQL, S3 and a downstream server:
enqueue → (broker) → run_task → rows, artifacts, object metadata, downstream headers."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import tracing
from errors import Conflict, SpecInvalid
from harness.downstream import Downstream, start_downstream
from models import state_machine
from models.views import get_task
from runtime import Runtime
from services.attempt import run_task
from services.dispatch import dispatch_due
from services.enqueue import enqueue
from storage.s3 import key_from_uri, metadata_value


@pytest.fixture
def downstream() -> Iterator[Downstream]:
    server = start_downstream()
    yield server
    server.stop()


def _count(rt: Runtime, table: str) -> int:
    with rt.db.connection():
        row = rt.db.one(f"SELECT count(*) FROM {table}")
    assert row is not None
    return int(row[0])


def _task(rt: Runtime, task_id: str) -> dict[str, Any]:
    with rt.db.connection():
        task = get_task(rt.db, task_id)
    assert task is not None
    return task


def _run(rt: Runtime, task_id: str, trace_id: str) -> str | None:
    with tracing.bound(trace_id=trace_id, task_id=task_id):
        return run_task(rt, task_id)


def test_a_task_runs_and_leaves_rows_artifacts_and_headers(rt: Runtime,
                                                           downstream: Downstream) -> None:
    trace_id = tracing.new_trace_id()
    spec = {"name": "hook", "steps": [
        {"action": "echo", "params": {"message": "hello"}},
        {"action": "http", "params": {"method": "POST", "url": downstream.url + "/hook",
                                      "json": {"x": 1}}},
        {"action": "http", "params": {"url": downstream.url + "/second"}},
    ]}
    with tracing.bound(trace_id=trace_id):
        result = enqueue(rt, spec, trace_id)
    assert _run(rt, result.task_id, trace_id) == "done"

    task = _task(rt, result.task_id)
    assert task["status"] == "done" and task["attempts"] == 1 and task["trace_id"] == trace_id
    assert [a["action_name"] for a in task["actions"]] == ["echo", "http", "http"]
    assert all(a["trace_id"] == trace_id and a["status"] == "ok" for a in task["actions"])
    assert all(re.fullmatch(r"[0-9a-f]{64}", a["inputs_hash"]) for a in task["actions"])
    assert task["actions"][1]["downstream_status"] == 200
    assert task["actions"][1]["result_artifact_id"] is not None
    assert [e["event"] for e in task["events"]] == [
        "task_enqueued", "task_dispatched", "task_claimed", "artifact_stored", "artifact_stored",
        "artifact_stored", "task_done"]

    (hook,) = downstream.received("/hook")
    (second,) = downstream.received("/second")
    assert hook.headers["X-Trace-Id"] == trace_id == second.headers["X-Trace-Id"]
    assert json.loads(hook.body) == {"x": 1}
    spans = set()
    for request in (hook, second):
        match = re.fullmatch(r"00-([0-9a-f]{32})-([0-9a-f]{16})-01", request.headers["traceparent"])
        assert match and match.group(1) == trace_id.replace("-", "")
        spans.add(match.group(2))
    assert len(spans) == 2, "each downstream call gets its own span id"

    log = next(a for a in task["artifacts"] if a["kind"] == "log")
    job_id = task["jobs"][0]["id"]
    bucket = rt.settings.s3_bucket
    assert log["uri"] == f"s3://{bucket}/{trace_id}/{result.task_id}/{job_id}/worker.log.jsonl"
    store = rt.store
    key = key_from_uri(log["uri"], rt.settings.s3_bucket)
    metadata = store.head(key)["Metadata"]
    assert isinstance(metadata, dict)
    assert metadata_value(metadata, "trace-id") == trace_id
    assert metadata_value(metadata, "task-id") == result.task_id
    lines = [json.loads(line) for line in b"".join(store.stream(key)).decode().splitlines()]
    assert {line["trace_id"] for line in lines} == {trace_id}
    assert {"task_claimed", "action_started", "action_finished", "http_request"} <= {
        line["event"] for line in lines}


def test_a_failing_task_is_retried_then_failed_with_a_readable_reason(rt: Runtime) -> None:
    trace_id = tracing.new_trace_id()
    spec = {"steps": [{"action": "fail", "params": {"message": "disk full"}}], "max_attempts": 2}
    result = enqueue(rt, spec, trace_id)
    assert _run(rt, result.task_id, trace_id) == "queued"
    with rt.db.connection():
        rt.db.execute("UPDATE tasks SET run_after = now() WHERE id = %s", (result.task_id,))
    assert _run(rt, result.task_id, trace_id) == "failed"
    task = _task(rt, result.task_id)
    assert task["error"] == "step 0 (fail): disk full"
    assert [j["status"] for j in task["jobs"]] == ["failed", "failed"]
    assert [a["kind"] for a in task["artifacts"]] == ["log", "log"], "each attempt keeps its log"
    assert "retry_scheduled" in [e["event"] for e in task["events"]]


def test_invalid_spec_writes_nothing(rt: Runtime) -> None:
    with pytest.raises(SpecInvalid):
        enqueue(rt, {"steps": [{"action": "echo"}]}, tracing.new_trace_id())
    assert _count(rt, "tasks") == 0 and _count(rt, "task_events") == 0


def test_idempotency_key_returns_the_original_or_conflicts(rt: Runtime) -> None:
    spec = {"steps": [{"action": "echo", "params": {"message": "once"}}]}
    first = enqueue(rt, spec, tracing.new_trace_id(), idempotency_key="deploy-42")
    again = enqueue(rt, spec, tracing.new_trace_id(), idempotency_key="deploy-42")
    assert (again.task_id, again.trace_id, again.created) == (first.task_id, first.trace_id, False)
    with pytest.raises(Conflict):
        enqueue(rt, {"steps": [{"action": "echo", "params": {"message": "other"}}]},
                tracing.new_trace_id(), idempotency_key="deploy-42")
    assert _count(rt, "tasks") == 1


def test_broker_down_at_enqueue_loses_nothing(rt: Runtime,
                                              runtime_with: Callable[..., Runtime]) -> None:
    """The task is accepted and durable; the dispatcher sends it once the broker answers."""
    down = runtime_with(JCT_BROKER_URL="amqp://guest:guest@127.0.0.1:1/%2F")
    trace_id = tracing.new_trace_id()
    result = enqueue(down, {"steps": [{"action": "echo", "params": {"message": "x"}}]}, trace_id)
    task = _task(rt, result.task_id)
    assert task["status"] == "queued" and task["dispatched_at"] is None
    failed = [e for e in task["events"] if e["event"] == "dispatch_failed"]
    assert len(failed) == 1 and "broker refused" in failed[0]["attrs"]["error"]

    assert dispatch_due(rt) == 1
    assert dispatch_due(rt) == 0, "a dispatched task is not re-sent before it goes stale"
    task = _task(rt, result.task_id)
    assert task["dispatched_at"] is not None
    assert task["events"][-1]["event"] == "task_redispatched"
    assert _run(rt, result.task_id, trace_id) == "done"


def test_a_failed_http_step_keeps_the_downstream_response(rt: Runtime,
                                                          downstream: Downstream) -> None:
    trace_id = tracing.new_trace_id()
    result = enqueue(rt, {"steps": [{"action": "http", "params": {"url": downstream.url + "/status/503"}}],
                      "max_attempts": 1}, trace_id)
    assert _run(rt, result.task_id, trace_id) == "failed"
    task = _task(rt, result.task_id)
    (action,) = task["actions"]
    assert action["downstream_status"] == 503 and action["status"] == "failed"
    assert "downstream answered 503" in action["error"]
    report = next(a for a in task["artifacts"] if a["id"] == action["result_artifact_id"])
    key = key_from_uri(report["uri"], rt.settings.s3_bucket)
    body = json.loads(b"".join(rt.store.stream(key)))
    assert body["response"]["status"] == 503


def test_a_cancel_during_a_failing_attempt_is_not_turned_into_a_retry(rt: Runtime) -> None:
    """An operator's cancel wins: the failing attempt does not requeue a cancelled task."""
    trace_id = tracing.new_trace_id()
    result = enqueue(rt, {"steps": [{"action": "fail", "params": {"message": "x"}}], "max_attempts": 3},
                     trace_id)
    with rt.db.connection():
        attempt = state_machine.claim_task(rt.db, "w1", 30, result.task_id)
        assert attempt is not None
        state_machine.cancel_task(rt.db, result.task_id, "ops")
        outcome = state_machine.finish_attempt(rt.db, attempt, error="step 0 (fail): x",
                                               retryable=True, retry_delay_s=1)
    assert outcome.task_status == "cancelled"
    assert _task(rt, result.task_id)["status"] == "cancelled"
