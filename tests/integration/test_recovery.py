"""Recovery paths against real PostgreSQL and S3: the rescuer takes back attempts whose worker
stopped renewing its lease; a log blob that S3 refused is kept and uploaded later."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import tracing
from holder import Holder, started_at
from models import state_machine
from models.invocations import Invocation, write_running
from models.state_machine import Attempt, FenceLost, NewTask
from models.views import get_task
from runtime import Runtime
from services.artifacts import upload_pending
from services.attempt import run_task
from services.enqueue import enqueue
from services.rescue import reap_dead_holders, rescue_lost_attempts
from services.spec import validate_spec
from storage.s3 import key_from_uri, metadata_value


def _claimed(rt: Runtime, max_attempts: int, lease_s: float) -> Attempt:
    spec = validate_spec({"steps": [{"action": "echo", "params": {"message": "x"}}],
                          "max_attempts": max_attempts})
    with rt.db.connection():
        (task_id,) = state_machine.create_tasks(rt.db, [NewTask(trace_id=tracing.new_trace_id(),
                                                                spec=spec)])
        attempt = state_machine.claim_task(rt.db, "dead-worker:1", lease_s, task_id)
    assert attempt is not None
    return attempt


def _task(rt: Runtime, task_id: str) -> dict[str, Any]:
    with rt.db.connection():
        task = get_task(rt.db, task_id)
    assert task is not None
    return task


def test_an_expired_lease_is_rescued_and_requeued_then_the_late_finish_is_fenced(rt: Runtime) -> None:
    attempt = _claimed(rt, max_attempts=2, lease_s=0.2)
    time.sleep(0.4)  # let the lease run out: the worker "died"
    assert rescue_lost_attempts(rt) == 1
    task = _task(rt, attempt.task_id)
    assert task["status"] == "queued"
    assert [(j["status"], j["error"]) for j in task["jobs"]] == [("lost", "worker_lost")]
    events = [e["event"] for e in task["events"]]
    assert events[-3:] == ["attempt_lost", "retry_scheduled", "task_dispatched"]
    with rt.db.connection(), pytest.raises(FenceLost):
        state_machine.finish_attempt(rt.db, attempt, error=None, retryable=False, retry_delay_s=0)
    assert run_task(rt, attempt.task_id) == "done"
    task = _task(rt, attempt.task_id)
    assert [j["status"] for j in task["jobs"]] == ["lost", "done"]


def test_an_expired_lease_on_the_last_attempt_fails_the_task_with_the_reason(rt: Runtime) -> None:
    attempt = _claimed(rt, max_attempts=1, lease_s=0.2)
    time.sleep(0.4)
    assert rescue_lost_attempts(rt) == 1
    task = _task(rt, attempt.task_id)
    assert task["status"] == "failed"
    assert task["error"] == "worker_lost: worker dead-worker:1 stopped renewing its lease"


def test_a_live_lease_is_left_alone(rt: Runtime) -> None:
    attempt = _claimed(rt, max_attempts=2, lease_s=30)
    assert rescue_lost_attempts(rt) == 0
    assert _task(rt, attempt.task_id)["status"] == "running"


def test_a_log_blob_s3_refused_is_kept_pending_and_uploaded_later(
        rt: Runtime, runtime_with: Callable[..., Runtime]) -> None:
    down = runtime_with(JCT_S3_ENDPOINT="http://127.0.0.1:1")  # S3 is down
    trace_id = tracing.new_trace_id()
    result = enqueue(down, {"steps": [{"action": "echo", "params": {"message": "kept"}}]}, trace_id)
    with tracing.bound(trace_id=trace_id, task_id=result.task_id):
        assert run_task(down, result.task_id) == "done", "the task's outcome does not hinge on S3"
    (log,) = _task(rt, result.task_id)["artifacts"]
    assert log["status"] == "pending"
    spooled = Path(log["pending_path"])
    assert spooled.exists() and b"kept" in spooled.read_bytes()
    assert upload_pending(down) == 0, "still down: nothing uploaded, nothing lost"

    healthy = rt  # S3 is back
    assert upload_pending(healthy) == 1
    (log,) = _task(rt, result.task_id)["artifacts"]
    assert (log["status"], log["pending_path"]) == ("stored", None)
    assert not spooled.exists()
    store = healthy.store
    key = key_from_uri(log["uri"], healthy.settings.s3_bucket)
    assert metadata_value(store.head(key)["Metadata"], "trace-id") == trace_id  # type: ignore[arg-type]
    assert b"kept" in b"".join(store.stream(key))
    assert [e["event"] for e in _task(rt, result.task_id)["events"]][-1] == "artifact_stored"


def _held_by(rt: Runtime, holder: Holder) -> Attempt:
    spec = validate_spec({"steps": [{"action": "echo", "params": {"message": "x"}}],
                          "max_attempts": 2})
    with rt.db.connection():
        (task_id,) = state_machine.create_tasks(rt.db, [NewTask(trace_id=tracing.new_trace_id(),
                                                                spec=spec)])
        attempt = state_machine.claim_task(rt.db, holder, 30, task_id)
    assert attempt is not None
    return attempt


def test_a_dead_holder_on_this_machine_is_released_at_once(rt: Runtime) -> None:
    """A worker process that is gone (here: killed) frees its attempt without waiting out the
    30 s lease; a live one, and one on another machine, are left to their leases."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    me = rt.holder
    dead_holder = Holder(me.host, child.pid, me.boot_id, started_at(child.pid))
    dead = _held_by(rt, dead_holder)
    alive = _held_by(rt, me)
    elsewhere = _held_by(rt, Holder("another-host", child.pid, "another-boot", 1.0))
    assert reap_dead_holders(rt) == 0, "nobody is dead yet"
    child.kill()
    child.wait()
    assert reap_dead_holders(rt) == 1
    task = _task(rt, dead.task_id)
    assert task["status"] == "queued"
    assert [(j["status"], j["error"]) for j in task["jobs"]] == [("lost", "worker_died")]
    assert [e["attrs"].get("reason") for e in task["events"] if e["event"] == "attempt_lost"] == [
        "worker_died"]
    assert _task(rt, alive.task_id)["status"] == "running"
    assert _task(rt, elsewhere.task_id)["status"] == "running"
    with rt.db.connection(), pytest.raises(FenceLost):
        state_machine.finish_attempt(rt.db, dead, error=None, retryable=False, retry_delay_s=0)


def test_a_reused_pid_does_not_keep_a_dead_holder_alive(rt: Runtime) -> None:
    me = rt.holder
    impostor = Holder(me.host, me.pid, me.boot_id, (me.started_at or 0) - 100)  # another start
    attempt = _held_by(rt, impostor)
    assert reap_dead_holders(rt) == 1
    assert _task(rt, attempt.task_id)["status"] == "queued"


def test_a_step_running_when_its_attempt_was_rescued_ends_failed_with_the_reason(
        rt: Runtime) -> None:
    """A slow step had its ``running`` row written; then its worker died. The rescue ends that
    row too, so no step claims to be running for ever."""
    attempt = _claimed(rt, max_attempts=2, lease_s=0.2)
    step = Invocation(task_id=attempt.task_id, job_id=attempt.id, trace_id=attempt.trace_id,
                      step=0, action_name="echo", inputs_hash="0" * 64,
                      started_at=datetime.now(UTC))
    with rt.db.connection():
        write_running(rt.db, step)
    time.sleep(0.4)
    assert rescue_lost_attempts(rt) == 1
    (action,) = _task(rt, attempt.task_id)["actions"]
    assert action["status"] == "failed" and action["completed_at"] is not None
    assert action["error"].startswith("worker_lost: the attempt was taken from its worker")
