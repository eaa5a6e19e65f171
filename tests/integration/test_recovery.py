"""Recovery paths against real PostgreSQL and S3: the rescuer takes back attempts whose worker
stopped renewing its lease; a log blob that S3 refused is kept and uploaded later."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

import tracing
from config import Settings
from models import transitions
from models.db import database
from models.task_view import get_task
from models.transitions import FenceLost, NewTask
from services.artifacts import upload_pending
from services.attempt import run_task
from services.maintenance import rescue_lost_attempts
from services.spec import validate_spec
from storage.s3 import get_store, key_from_uri, metadata_value
from tests.integration.conftest import use_settings


def _claimed(max_attempts: int, lease_s: float) -> transitions.ClaimedAttempt:
    spec = validate_spec({"steps": [{"action": "echo", "params": {"message": "x"}}],
                          "max_attempts": max_attempts})
    with database.connection_context():
        (task_id,) = transitions.create_tasks([NewTask(trace_id=tracing.new_trace_id(), spec=spec)])
        attempt = transitions.claim_task("dead-worker:1", lease_s, task_id)
    assert attempt is not None
    return attempt


def _task(task_id: str) -> dict:  # type: ignore[type-arg]
    with database.connection_context():
        task = get_task(task_id)
    assert task is not None
    return task


def test_an_expired_lease_is_rescued_and_requeued_then_the_late_finish_is_fenced(
        settings: Settings) -> None:
    attempt = _claimed(max_attempts=2, lease_s=0.2)
    time.sleep(0.4)  # let the lease run out: the worker "died"
    assert rescue_lost_attempts() == 1
    task = _task(attempt.task_id)
    assert task["status"] == "queued"
    assert [(j["status"], j["error"]) for j in task["jobs"]] == [("lost", "worker_lost")]
    events = [e["event"] for e in task["events"]]
    assert events[-3:] == ["attempt_lost", "retry_scheduled", "task_dispatched"]
    with database.connection_context(), pytest.raises(FenceLost):
        transitions.finish_attempt(attempt, error=None, retryable=False, retry_delay_s=0)
    assert run_task(attempt.task_id) == "done"
    task = _task(attempt.task_id)
    assert [j["status"] for j in task["jobs"]] == ["lost", "done"]


def test_an_expired_lease_on_the_last_attempt_fails_the_task_with_the_reason(settings: Settings) -> None:
    attempt = _claimed(max_attempts=1, lease_s=0.2)
    time.sleep(0.4)
    assert rescue_lost_attempts() == 1
    task = _task(attempt.task_id)
    assert task["status"] == "failed"
    assert task["error"] == "worker_lost: worker dead-worker:1 stopped renewing its lease"


def test_a_live_lease_is_left_alone(settings: Settings) -> None:
    attempt = _claimed(max_attempts=2, lease_s=30)
    assert rescue_lost_attempts() == 0
    assert _task(attempt.task_id)["status"] == "running"


def test_a_log_blob_s3_refused_is_kept_pending_and_uploaded_later(
        settings: Settings, base_env: dict[str, str]) -> None:
    use_settings({**base_env, "JCT_S3_ENDPOINT": "http://127.0.0.1:1"})  # S3 is down
    trace_id = tracing.new_trace_id()
    from services.enqueue import enqueue

    result = enqueue({"steps": [{"action": "echo", "params": {"message": "kept"}}]}, trace_id)
    with tracing.bound(trace_id=trace_id, task_id=result.task_id):
        assert run_task(result.task_id) == "done", "the task's outcome does not hinge on S3"
    (log,) = _task(result.task_id)["artifacts"]
    assert log["status"] == "pending"
    spooled = Path(log["pending_path"])
    assert spooled.exists() and b"kept" in spooled.read_bytes()
    assert upload_pending() == 0, "still down: nothing uploaded, nothing lost"

    healthy = use_settings(base_env)  # S3 is back
    assert upload_pending() == 1
    (log,) = _task(result.task_id)["artifacts"]
    assert (log["status"], log["pending_path"]) == ("stored", None)
    assert not spooled.exists()
    store = get_store(healthy)
    key = key_from_uri(log["uri"], healthy.s3_bucket)
    assert metadata_value(store.head(key)["Metadata"], "trace-id") == trace_id  # type: ignore[arg-type]
    assert b"kept" in b"".join(store.stream(key))
    assert [e["event"] for e in _task(result.task_id)["events"]][-1] == "artifact_stored"
