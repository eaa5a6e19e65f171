"""The dispatcher's rules against real PostgreSQL: a task taken by one pass is not taken by the
next, a failed send makes the task due again, a stale backlog is re-sent with backoff."""

from __future__ import annotations

import tracing
from config import Settings
from models import transitions
from models.db import database
from models.transitions import NewTask
from services.dispatcher import dispatch_due
from services.spec import validate_spec
from tests.integration.conftest import use_settings

SPEC = validate_spec({"steps": [{"action": "echo", "params": {"message": "x"}}]})


def _never_sent(count: int) -> list[str]:
    with database.connection_context():
        return transitions.create_tasks([NewTask(trace_id=tracing.new_trace_id(), spec=SPEC)
                                         for _ in range(count)])


def _age(task_ids: list[str], seconds: float) -> None:
    """Pretend the tasks were created and last sent ``seconds`` ago."""
    with database.connection_context():
        database.execute_sql(
            "UPDATE tasks SET run_after = now() - make_interval(secs => %s),"
            " dispatched_at = now() - make_interval(secs => %s) WHERE id = ANY(%s::uuid[])",
            (seconds, seconds, task_ids))


def test_a_task_taken_by_one_pass_is_not_taken_by_the_next(settings: Settings) -> None:
    ids = _never_sent(5)
    with database.connection_context():
        first = transitions.tasks_due_for_dispatch(stale_s=60)
        second = transitions.tasks_due_for_dispatch(stale_s=60)
    assert sorted(task for task, _, _ in first) == sorted(ids)
    assert second == []


def test_a_failed_send_leaves_the_task_due_and_stops_the_pass(settings: Settings,
                                                              base_env: dict[str, str]) -> None:
    ids = _never_sent(3)
    down = use_settings({**base_env, "JCT_BROKER_URL": "amqp://guest:guest@127.0.0.1:1/%2F"})
    assert dispatch_due(down) == 0
    with database.connection_context():
        failed = database.execute_sql("SELECT count(*) FROM task_events WHERE event = 'dispatch_failed'"
                                      ).fetchone()
        still_due = transitions.tasks_due_for_dispatch(stale_s=60)
    assert failed == (1,), "one dispatch_failed per pass, not one per waiting task"
    assert sorted(task for task, _, _ in still_due) == sorted(ids)


def test_a_stale_backlog_is_re_sent_with_backoff(settings: Settings) -> None:
    (task_id,) = _never_sent(1)
    assert dispatch_due(settings) == 1                     # first send: dispatch_count 1
    _age([task_id], 61)
    assert dispatch_due(settings) == 1                     # stale after 60 s: count 2
    _age([task_id], 61)
    assert dispatch_due(settings) == 0, "the second re-send waits 2 x 60 s"
    _age([task_id], 121)
    assert dispatch_due(settings) == 1
    with database.connection_context():
        row = database.execute_sql("SELECT dispatch_count FROM tasks WHERE id = %s",
                                   (task_id,)).fetchone()
    assert row == (3,)
