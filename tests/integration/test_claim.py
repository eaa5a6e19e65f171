"""The state machine against real PostgreSQL: one claim per task, fencing, retries."""

from __future__ import annotations

import threading

import pytest

from errors import IllegalTransition
from models import state_machine
from models.state_machine import FenceLost, NewTask
from models.tasks import cancel_requested
from runtime import Runtime
from services.spec import validate_spec
from states import Event

TRACE = "4bf92f35-77b3-4da6-a3ce-929d0e0e4736"


def _tasks(rt: Runtime, count: int, **spec_fields: object) -> list[str]:
    spec = validate_spec({"steps": [{"action": "echo", "params": {"message": "x"}}], **spec_fields})
    with rt.db.connection():
        return state_machine.create_tasks(rt.db, [NewTask(trace_id=TRACE, spec=spec)
                                                  for _ in range(count)])


def _events(rt: Runtime, task_id: str) -> list[str]:
    with rt.db.connection():
        return [r[0] for r in rt.db.all(
            "SELECT event FROM task_events WHERE task_id = %s ORDER BY id", (task_id,))]


def test_two_concurrent_claimers_never_take_the_same_task(rt: Runtime) -> None:
    ids = set(_tasks(rt, 60))
    taken: dict[str, list[str]] = {"a": [], "b": []}
    start = threading.Barrier(2)

    def claimer(name: str) -> None:
        with rt.db.connection():
            start.wait()
            while (attempt := state_machine.claim_task(rt.db, name, 30)) is not None:
                taken[name].append(attempt.task_id)

    threads = [threading.Thread(target=claimer, args=(n,)) for n in taken]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert set(taken["a"]).isdisjoint(taken["b"])
    assert set(taken["a"]) | set(taken["b"]) == ids
    assert len(taken["a"]) + len(taken["b"]) == 60
    with rt.db.connection():
        counts = rt.db.one("SELECT count(*), count(DISTINCT task_id) FROM jobs")
    assert counts == (60, 60)


def test_a_second_claim_of_the_same_task_finds_nothing(rt: Runtime) -> None:
    (task_id,) = _tasks(rt, 1)
    with rt.db.connection():
        first = state_machine.claim_task(rt.db, "w1", 30, task_id)
        assert first is not None and first.number == 1 and first.trace_id == TRACE
        assert state_machine.claim_task(rt.db, "w2", 30, task_id) is None
    assert _events(rt, task_id) == ["task_enqueued", "task_claimed"]


def test_finish_is_fenced_when_the_attempt_was_taken_away(rt: Runtime) -> None:
    """A worker whose attempt was rescued cannot overwrite the task when it wakes up."""
    (task_id,) = _tasks(rt, 1)
    with rt.db.connection():
        attempt = state_machine.claim_task(rt.db, "w1", 30, task_id)
        assert attempt is not None
        rt.db.execute("UPDATE jobs SET status = 'lost' WHERE id = %s", (attempt.id,))
        with pytest.raises(FenceLost):
            state_machine.finish_attempt(rt.db, attempt, error=None, retryable=False, retry_delay_s=0)
        status = rt.db.one("SELECT status FROM tasks WHERE id = %s", (task_id,))
    assert status == ("running",)
    assert "task_done" not in _events(rt, task_id)


def test_failed_attempt_with_attempts_left_is_requeued_with_backoff(rt: Runtime) -> None:
    (task_id,) = _tasks(rt, 1, max_attempts=2)
    with rt.db.connection():
        first = state_machine.claim_task(rt.db, "w1", 30, task_id)
        assert first is not None
        outcome = state_machine.finish_attempt(rt.db, first, error="boom", retryable=True, retry_delay_s=60)
        assert outcome.task_status == "queued" and outcome.run_after is not None
        assert state_machine.claim_task(rt.db, "w1", 30, task_id) is None, "not due for 60 s"
        rt.db.execute("UPDATE tasks SET run_after = now() WHERE id = %s", (task_id,))
        second = state_machine.claim_task(rt.db, "w1", 30, task_id)
        assert second is not None and second.number == 2
        final = state_machine.finish_attempt(rt.db, second, error="boom again", retryable=True,
                                             retry_delay_s=60)
        row = rt.db.one("SELECT status, error, attempts FROM tasks WHERE id = %s", (task_id,))
    assert final.task_status == "failed"
    assert row == ("failed", "boom again", 2)
    assert _events(rt, task_id) == ["task_enqueued", "task_claimed", "retry_scheduled", "task_claimed",
                                "task_failed"]


def test_cancel_and_retry_follow_the_state_machine(rt: Runtime) -> None:
    queued, running = _tasks(rt, 2)
    with rt.db.connection():
        assert state_machine.cancel_task(rt.db, queued, "ops") == "cancelled"
        assert state_machine.claim_task(rt.db, "w1", 30, queued) is None
        attempt = state_machine.claim_task(rt.db, "w1", 30, running)
        assert attempt is not None
        assert state_machine.cancel_task(rt.db, running, "ops") == "running"
        assert cancel_requested(rt.db, running)
        with pytest.raises(IllegalTransition):
            state_machine.retry_task(rt.db, running, "ops")
        outcome = state_machine.finish_attempt(rt.db, attempt, error="cancelled by operator", retryable=False,
                                             retry_delay_s=0, cancelled=True)
        assert outcome.task_status == "cancelled"
        assert state_machine.retry_task(rt.db, running, "ops") == "queued"
        again = state_machine.claim_task(rt.db, "w1", 30, running)
    assert again is not None and again.number == 2
    assert _events(rt, running)[-3:] == ["task_cancelled", "task_retried", "task_claimed"]


def test_claiming_a_named_task_waits_out_a_short_lock_instead_of_skipping(rt: Runtime) -> None:
    """A delivered message must not be lost to a brief row lock (the API marking the task
    dispatched at the same moment): the claim waits, then takes the task."""
    (task_id,) = _tasks(rt, 1)
    locked = threading.Event()
    release = threading.Event()

    def hold_lock() -> None:
        with rt.db.connection(), rt.db.transaction():
            rt.db.execute("UPDATE tasks SET dispatched_at = now() WHERE id = %s", (task_id,))
            locked.set()
            release.wait(5)

    holder = threading.Thread(target=hold_lock)
    holder.start()
    locked.wait(5)
    threading.Timer(0.5, release.set).start()
    with rt.db.connection():
        attempt = state_machine.claim_task(rt.db, "w1", 30, task_id)
    holder.join()
    assert attempt is not None and attempt.task_id == task_id


def test_a_cancel_that_commits_while_the_finish_waits_for_the_lock_cancels_the_task(
        rt: Runtime) -> None:
    """The finish waits for the task's row lock while an operator's cancel holds it. Its own
    reads saw the row from before that wait; it must read the flag again and settle the task
    ``cancelled``, not mistake the change for a lost fence (which left the task ``running``
    until its lease ran out)."""
    (task_id,) = _tasks(rt, 1)
    with rt.db.connection():
        attempt = state_machine.claim_task(rt.db, "w1", 30, task_id)
    assert attempt is not None
    locked = threading.Event()
    release = threading.Event()

    def cancel_holding_the_lock() -> None:
        with rt.db.connection(), rt.db.transaction():
            rt.db.execute("UPDATE tasks SET cancel_requested = true WHERE id = %s", (task_id,))
            locked.set()
            release.wait(5)

    canceller = threading.Thread(target=cancel_holding_the_lock)
    canceller.start()
    locked.wait(5)
    threading.Timer(0.5, release.set).start()
    with rt.db.connection():
        end = state_machine.finish_attempt(rt.db, attempt, error="boom", retryable=True,
                                           retry_delay_s=0)
    canceller.join()
    assert end.task_status == "cancelled"
    with rt.db.connection():
        row = rt.db.one("SELECT status, current_job_id FROM tasks WHERE id = %s", (task_id,))
    assert row == ("cancelled", None)


def test_a_give_back_of_a_task_whose_cancel_was_asked_cancels_it(rt: Runtime) -> None:
    """A worker shutting down gives back an attempt whose task an operator asked to cancel
    (the attempt had not seen the flag yet): the task ends ``cancelled`` with the event, never
    ``queued`` with the flag set — no claim takes such a task, so it would wait for ever."""
    (task_id,) = _tasks(rt, 1)
    with rt.db.connection():
        attempt = state_machine.claim_task(rt.db, "w1", 30, task_id)
        assert attempt is not None
        assert state_machine.cancel_task(rt.db, task_id, "ops") == "running"
        status = state_machine.give_back_attempt(rt.db, attempt, Event.WORKER_SHUTDOWN)
        row = rt.db.one("SELECT status, finished_at IS NOT NULL FROM tasks WHERE id = %s",
                        (task_id,))
        job = rt.db.one("SELECT status, error FROM jobs WHERE id = %s", (attempt.id,))
    assert status == "cancelled" and row == ("cancelled", True)
    assert job == ("lost", "worker_shutdown")
    assert _events(rt, task_id)[-2:] == ["task_cancelled", "worker_shutdown"] or \
        _events(rt, task_id)[-2:] == ["worker_shutdown", "task_cancelled"]


def test_a_give_back_requeues_a_task_nobody_cancelled(rt: Runtime) -> None:
    (task_id,) = _tasks(rt, 1)
    with rt.db.connection():
        attempt = state_machine.claim_task(rt.db, "w1", 30, task_id)
        assert attempt is not None
        assert state_machine.give_back_attempt(rt.db, attempt, Event.WORKER_SHUTDOWN) == "queued"
        with pytest.raises(FenceLost):
            state_machine.give_back_attempt(rt.db, attempt, Event.WORKER_SHUTDOWN)
    assert "task_cancelled" not in _events(rt, task_id)
