"""The state machine against real PostgreSQL: one claim per task, fencing, retries."""

from __future__ import annotations

import threading

import pytest

from config import Settings
from models import transitions
from models.db import database
from models.transitions import FenceLost, NewTask
from services.spec import validate_spec

TRACE = "4bf92f35-77b3-4da6-a3ce-929d0e0e4736"


def _tasks(count: int, **spec_fields: object) -> list[str]:
    spec = validate_spec({"steps": [{"action": "echo", "params": {"message": "x"}}], **spec_fields})
    with database.connection_context():
        return transitions.create_tasks([NewTask(trace_id=TRACE, spec=spec) for _ in range(count)])


def _events(task_id: str) -> list[str]:
    with database.connection_context():
        return [r[0] for r in database.execute_sql(
            "SELECT event FROM task_events WHERE task_id = %s ORDER BY id", (task_id,))]


def test_two_concurrent_claimers_never_take_the_same_task(settings: Settings) -> None:
    ids = set(_tasks(60))
    taken: dict[str, list[str]] = {"a": [], "b": []}
    start = threading.Barrier(2)

    def claimer(name: str) -> None:
        with database.connection_context():
            start.wait()
            while (attempt := transitions.claim_task(name, 30)) is not None:
                taken[name].append(attempt.task_id)

    threads = [threading.Thread(target=claimer, args=(n,)) for n in taken]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert set(taken["a"]).isdisjoint(taken["b"])
    assert set(taken["a"]) | set(taken["b"]) == ids
    assert len(taken["a"]) + len(taken["b"]) == 60
    with database.connection_context():
        counts = database.execute_sql("SELECT count(*), count(DISTINCT task_id) FROM jobs").fetchone()
    assert counts == (60, 60)


def test_a_second_claim_of_the_same_task_finds_nothing(settings: Settings) -> None:
    (task_id,) = _tasks(1)
    with database.connection_context():
        first = transitions.claim_task("w1", 30, task_id)
        assert first is not None and first.attempt == 1 and first.trace_id == TRACE
        assert transitions.claim_task("w2", 30, task_id) is None
    assert _events(task_id) == ["task_enqueued", "task_claimed"]


def test_finish_is_fenced_when_the_attempt_was_taken_away(settings: Settings) -> None:
    """A worker whose attempt was rescued cannot overwrite the task when it wakes up."""
    (task_id,) = _tasks(1)
    with database.connection_context():
        attempt = transitions.claim_task("w1", 30, task_id)
        assert attempt is not None
        database.execute_sql("UPDATE jobs SET status = 'lost' WHERE id = %s", (attempt.job_id,))
        with pytest.raises(FenceLost):
            transitions.finish_attempt(attempt, error=None, retryable=False, retry_delay_s=0)
        status = database.execute_sql("SELECT status FROM tasks WHERE id = %s", (task_id,)).fetchone()
    assert status == ("running",)
    assert "task_done" not in _events(task_id)


def test_failed_attempt_with_attempts_left_is_requeued_with_backoff(settings: Settings) -> None:
    (task_id,) = _tasks(1, max_attempts=2)
    with database.connection_context():
        first = transitions.claim_task("w1", 30, task_id)
        assert first is not None
        outcome = transitions.finish_attempt(first, error="boom", retryable=True, retry_delay_s=60)
        assert outcome.task_status == "queued" and outcome.run_after is not None
        assert transitions.claim_task("w1", 30, task_id) is None, "not due for 60 s"
        database.execute_sql("UPDATE tasks SET run_after = now() WHERE id = %s", (task_id,))
        second = transitions.claim_task("w1", 30, task_id)
        assert second is not None and second.attempt == 2
        final = transitions.finish_attempt(second, error="boom again", retryable=True, retry_delay_s=60)
        row = database.execute_sql("SELECT status, error, attempts FROM tasks WHERE id = %s",
                                   (task_id,)).fetchone()
    assert final.task_status == "failed"
    assert row == ("failed", "boom again", 2)
    assert _events(task_id) == ["task_enqueued", "task_claimed", "retry_scheduled", "task_claimed",
                                "task_failed"]


def test_cancel_and_retry_follow_the_state_machine(settings: Settings) -> None:
    queued, running = _tasks(2)
    with database.connection_context():
        assert transitions.cancel_task(queued, "ops") == "cancelled"
        assert transitions.claim_task("w1", 30, queued) is None
        attempt = transitions.claim_task("w1", 30, running)
        assert attempt is not None
        assert transitions.cancel_task(running, "ops") == "running"
        assert transitions.cancel_requested(running)
        with pytest.raises(transitions.IllegalTransition):
            transitions.retry_task(running, "ops")
        outcome = transitions.finish_attempt(attempt, error="cancelled by operator", retryable=False,
                                             retry_delay_s=0, cancelled=True)
        assert outcome.task_status == "cancelled"
        assert transitions.retry_task(running, "ops") == "queued"
        again = transitions.claim_task("w1", 30, running)
    assert again is not None and again.attempt == 2
    assert _events(running)[-3:] == ["task_cancelled", "task_retried", "task_claimed"]


def test_claiming_a_named_task_waits_out_a_short_lock_instead_of_skipping(settings: Settings) -> None:
    """A delivered message must not be lost to a brief row lock (the API marking the task
    dispatched at the same moment): the claim waits, then takes the task."""
    (task_id,) = _tasks(1)
    locked = threading.Event()
    release = threading.Event()

    def hold_lock() -> None:
        with database.connection_context(), database.atomic():
            database.execute_sql("UPDATE tasks SET dispatched_at = now() WHERE id = %s", (task_id,))
            locked.set()
            release.wait(5)

    holder = threading.Thread(target=hold_lock)
    holder.start()
    locked.wait(5)
    threading.Timer(0.5, release.set).start()
    with database.connection_context():
        attempt = transitions.claim_task("w1", 30, task_id)
    holder.join()
    assert attempt is not None and attempt.task_id == task_id
