"""The dispatcher's rules against real PostgreSQL: a task taken by one pass is not taken by the
next, a failed send makes the task due again, a stale backlog is re-sent with backoff."""

from __future__ import annotations

from collections.abc import Callable

import tracing
from models import dispatch, state_machine
from models.state_machine import NewTask
from runtime import Runtime
from services.dispatch import dispatch_due
from services.spec import validate_spec

SPEC = validate_spec({"steps": [{"action": "echo", "params": {"message": "x"}}]})


def _never_sent(rt: Runtime, count: int) -> list[str]:
    """Tasks whose wake-up was never sent (as when the broker refused it at enqueue)."""
    with rt.db.connection():
        ids = state_machine.create_tasks(rt.db, [NewTask(trace_id=tracing.new_trace_id(), spec=SPEC)
                                                 for _ in range(count)])
        rt.db.execute("UPDATE tasks SET dispatched_at = NULL WHERE id = ANY(%s::uuid[])", (ids,))
    return ids


def _lose_messages(rt: Runtime) -> None:
    """The wake-ups waiting in the PostgreSQL broker disappear (purged, or consumed by a
    process that died before it claimed)."""
    with rt.db.connection():
        rt.db.execute("DELETE FROM dramatiq.queue WHERE queue_name LIKE %s",
                      (rt.settings.queue + "%",))


def _age(rt: Runtime, task_ids: list[str], seconds: float) -> None:
    """Pretend the tasks were created and last sent ``seconds`` ago."""
    with rt.db.connection():
        rt.db.execute(
            "UPDATE tasks SET run_after = now() - make_interval(secs => %s),"
            " dispatched_at = now() - make_interval(secs => %s) WHERE id = ANY(%s::uuid[])",
            (seconds, seconds, task_ids))


def test_a_task_taken_by_one_pass_is_not_taken_by_the_next(rt: Runtime) -> None:
    ids = _never_sent(rt, 5)
    with rt.db.connection():
        first = dispatch.take_unsent(rt.db)
        second = dispatch.take_unsent(rt.db)
    assert sorted(task for task, _, _ in first) == sorted(ids)
    assert second == []


def test_a_failed_send_leaves_the_task_due_and_stops_the_pass(
        rt: Runtime, runtime_with: Callable[..., Runtime]) -> None:
    ids = _never_sent(rt, 3)
    down = runtime_with(JCT_BROKER_URL="amqp://guest:guest@127.0.0.1:1/%2F")
    assert dispatch_due(down) == 0
    with rt.db.connection():
        failed = rt.db.one("SELECT count(*) FROM task_events WHERE event = 'dispatch_failed'")
        still_due = dispatch.take_unsent(rt.db)
    assert failed == (1,), "one dispatch_failed per pass, not one per waiting task"
    assert sorted(task for task, _, _ in still_due) == sorted(ids)


def test_a_waiting_task_is_not_re_sent_on_age_alone_only_when_its_wake_up_is_gone(
        rt: Runtime) -> None:
    """Evidence, not age: a task that waited past the threshold while its message waits in the
    broker is not sent another; once the message is gone it is, backing off per send."""
    (task_id,) = _never_sent(rt, 1)
    assert dispatch_due(rt) == 1                     # first send: dispatch_count 1
    _age(rt, [task_id], 61)
    assert dispatch_due(rt) == 0, "its message still waits in the broker"
    _lose_messages(rt)
    assert dispatch_due(rt) == 1                     # stale after 60 s, message gone: count 2
    _lose_messages(rt)
    _age(rt, [task_id], 61)
    assert dispatch_due(rt) == 0, "the second re-send waits 2 x 60 s"
    _age(rt, [task_id], 121)
    assert dispatch_due(rt) == 1
    with rt.db.connection():
        row = rt.db.one("SELECT dispatch_count FROM tasks WHERE id = %s", (task_id,))
    assert row == (3,)


def _events_of(rt: Runtime, ids: list[str]) -> list[tuple[str, str]]:
    with rt.db.connection():
        return [(str(r[0]), str(r[1])) for r in rt.db.all(
            "SELECT task_id, event FROM task_events WHERE task_id = ANY(%s::uuid[])"
            " AND event IN ('task_dispatched', 'dispatch_failed')", (ids,))]


def test_a_batch_on_rabbitmq_is_sent_at_once_and_each_send_recorded(
        runtime_with: Callable[..., Runtime]) -> None:
    """``POST /enqueue/batch`` on RabbitMQ: the wake-ups go in one AMQP transaction, and every
    task is marked dispatched with its event."""
    from services.enqueue import enqueue_batch
    from tests.support.services import delete_queue, require_rabbitmq

    url = require_rabbitmq()
    queue = f"jct_batch_{tracing.new_trace_id()[:8]}"
    rabbit = runtime_with(JCT_BROKER_URL=url, JCT_QUEUE=queue)
    try:
        accepted = enqueue_batch(rabbit, {"tasks": [{"steps": SPEC["steps"]}] * 5},
                                 tracing.new_trace_id())
        ids = [a.task_id for a in accepted]
        assert sorted(_events_of(rabbit, ids)) == sorted((i, "task_dispatched") for i in ids)
        with rabbit.db.connection():
            unsent = rabbit.db.one("SELECT count(*) FROM tasks WHERE id = ANY(%s::uuid[])"
                                   " AND dispatched_at IS NULL", (ids,))
        assert unsent == (0,)
        assert rabbit.broker.waiting_in_rabbitmq() == 5
    finally:
        delete_queue(url, queue)


def test_a_batch_the_broker_refuses_is_sent_one_by_one_each_failure_recorded(
        runtime_with: Callable[..., Runtime]) -> None:
    from services.enqueue import enqueue_batch

    down = runtime_with(JCT_BROKER_URL="amqp://guest:guest@127.0.0.1:1/%2F")
    accepted = enqueue_batch(down, {"tasks": [{"steps": SPEC["steps"]}] * 3},
                             tracing.new_trace_id())
    ids = [a.task_id for a in accepted]
    assert sorted(_events_of(down, ids)) == sorted((i, "dispatch_failed") for i in ids)
    with down.db.connection():
        due = dispatch.take_unsent(down.db)
    assert sorted(task for task, _, _ in due) == sorted(ids), "the dispatcher will send them"
