"""The hot path's cost in statements, counted exactly (a regression guard, not a timing): an
echo task's attempt is two statements on JCT's own connection — the claim (with its attempt
row and event) and the end (with its steps, its log's row and the events) — and an enqueue on
the PostgreSQL broker is one transaction of three statements (the tasks, their wake-ups, their
events), however many tasks it holds. (Transaction boundaries are not statements here.)"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

import tracing
from runtime import Runtime
from services.attempt import run_task
from services.enqueue import enqueue, enqueue_batch

ECHO = {"steps": [{"action": "echo", "params": {"message": "counted"}}]}


@contextmanager
def counted(rt: Runtime) -> Iterator[list[str]]:
    """Every statement JCT's database handle sends while the block runs."""
    statements: list[str] = []

    def hook(event: Any) -> None:
        statements.append(" ".join(str(event.sql).split())[:60])

    hooks = rt.db.peewee.query_hooks
    hooks.append(hook)
    try:
        yield statements
    finally:
        hooks.remove(hook)


def test_an_echo_attempt_costs_two_statements(rt: Runtime) -> None:
    trace_id = tracing.new_trace_id()
    task = enqueue(rt, ECHO, trace_id)
    with counted(rt) as statements, tracing.bound(trace_id=trace_id, task_id=task.task_id):
        assert run_task(rt, task.task_id) == "done"
    assert len(statements) == 2, statements
    assert statements[0].startswith("WITH claimed AS") and statements[1].startswith("WITH held AS")


@pytest.mark.parametrize("tasks", [1, 100])
def test_an_enqueue_is_one_statement_however_many_tasks(rt: Runtime, tasks: int) -> None:
    with counted(rt) as statements:
        if tasks == 1:
            enqueue(rt, ECHO, tracing.new_trace_id())
        else:
            enqueue_batch(rt, {"tasks": [ECHO] * tasks}, tracing.new_trace_id())
    assert [s.split(" (")[0] for s in statements] == ["WITH created AS"], statements
    with rt.db.connection():
        row = rt.db.one("SELECT count(*), count(*) FILTER (WHERE dispatch_count = 1),"
                        " (SELECT count(*) FROM dramatiq.queue q"
                        "   WHERE q.message->'args'->>0 IN (SELECT id::text FROM tasks)),"
                        " (SELECT count(*) FROM task_events WHERE event = 'task_enqueued'),"
                        " (SELECT count(*) FROM task_events WHERE event = 'task_dispatched'"
                        "   AND attrs->>'broker' = 'PostgresBroker')"
                        " FROM tasks")
    assert row == (tasks,) * 5, ("each task written with its wake-up and both events (the broker "
                                 "named as the library's class), marked sent")

