"""The diagnosis reads a task, the time and the queue position; plain values in, one sentence
out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from services.diagnosis import diagnose

NOW = datetime(2026, 12, 2, 12, 0, 0, tzinfo=UTC)


def _at(seconds_ago: float) -> str:
    return (NOW - timedelta(seconds=seconds_ago)).isoformat()


def _task(status: str, **fields: Any) -> dict[str, Any]:
    task = {"id": "t-1", "status": status, "attempts": 1, "max_attempts": 3, "error": None,
            "cancel_requested": False, "created_at": _at(90), "run_after": _at(90),
            "dispatched_at": _at(90), "jobs": [], "events": []}
    return {**task, **fields}


def _event(name: str, seconds_ago: float, **attrs: Any) -> dict[str, Any]:
    return {"event": name, "ts": _at(seconds_ago), "attrs": attrs}


def test_a_waiting_task_says_how_long_and_how_many_are_ahead() -> None:
    found = diagnose(_task("queued"), NOW, queued_ahead=7)
    assert found == {"code": "waiting_for_worker",
                     "message": "Queued for 90s with 7 task(s) ahead; waiting for a free worker."}


def test_a_task_the_broker_refused_says_so() -> None:
    task = _task("queued", dispatched_at=None,
                 events=[_event("dispatch_failed", 80, error="connection refused")])
    found = diagnose(task, NOW)
    assert found["code"] == "not_dispatched" and "connection refused" in found["message"]


def test_a_retry_in_the_future_names_the_time_and_the_error() -> None:
    task = _task("queued", run_after=(NOW + timedelta(seconds=30)).isoformat(), error="boom")
    found = diagnose(task, NOW)
    assert found["code"] == "retry_scheduled"
    assert "boom" in found["message"] and task["run_after"] in found["message"]


def test_a_running_task_names_its_worker_and_heartbeat() -> None:
    job = {"attempt": 2, "worker": "vm:42", "heartbeat_at": _at(3)}
    found = diagnose(_task("running", jobs=[job], cancel_requested=True), NOW)
    assert found["code"] == "running"
    assert "Attempt 2 of 3 running on worker vm:42, last heartbeat 3s ago" in found["message"]
    assert "Cancel requested" in found["message"]


def test_a_cancelled_task_names_who_cancelled_it() -> None:
    events = [_event("cancel_requested", 20, by="ops"), _event("task_cancelled", 10)]
    found = diagnose(_task("cancelled", events=events), NOW)
    assert found["code"] == "cancelled" and found["message"].startswith("Cancelled by ops at")


def test_done_and_failed() -> None:
    assert diagnose(_task("done", attempts=2), NOW)["message"] == "Finished after 2 attempt(s)."
    failed = diagnose(_task("failed", attempts=3, error="step 0 (fail): x"), NOW)
    assert failed == {"code": "failed", "message": "Failed after 3 attempt(s): step 0 (fail): x."}
