"""Both brokers deliver the wake-up message with the trace context in its options, and the
worker's TraceMiddleware binds it for the actor (then clears it)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import dramatiq
import pytest
from dramatiq import Worker

import broker
import tracing
from actors.middleware import TraceMiddleware
from harness.wait import wait_until
from runtime import Runtime
from tests.support.services import delete_queue, require_rabbitmq


@pytest.fixture(params=["postgres", "rabbitmq"])
def broker_runtime(request: pytest.FixtureRequest,
                   runtime_with: Callable[..., Runtime]) -> Iterator[Runtime]:
    queue = f"jct_it_{uuid.uuid4().hex[:8]}"
    env = {"JCT_QUEUE": queue}
    if request.param == "rabbitmq":
        env["JCT_BROKER_URL"] = require_rabbitmq()
    current = runtime_with(**env)
    yield current
    current.close()
    if request.param == "rabbitmq":
        delete_queue(env["JCT_BROKER_URL"], queue)


def _recording_actor(rt: Runtime) -> list[dict[str, str]]:
    """The task actor on ``rt``'s broker, behind JCT's TraceMiddleware: each delivery appends
    the trace context it ran under and its argument."""
    seen: list[dict[str, str]] = []
    rt.broker.dramatiq.add_middleware(TraceMiddleware())

    def process_task(task_id: str) -> None:
        seen.append({**tracing.current(), "arg": task_id})

    dramatiq.actor(process_task, actor_name=broker.PROCESS_TASK, queue_name=rt.settings.queue,
                   broker=rt.broker.dramatiq, max_retries=0)
    return seen


def _work_until(rt: Runtime, done: Callable[[], bool], what: str) -> None:
    worker = Worker(rt.broker.dramatiq, worker_threads=2, worker_timeout=100)
    worker.start()
    try:
        wait_until(done, timeout=30, what=what)
    finally:
        worker.stop()


def test_message_carries_trace_context_to_the_actor(broker_runtime: Runtime) -> None:
    seen = _recording_actor(broker_runtime)
    trace_id, task_id = tracing.new_trace_id(), str(uuid.uuid4())
    message_id = broker_runtime.broker.send_task(task_id, trace_id)
    _work_until(broker_runtime, lambda: bool(seen), f"delivery of {message_id}")
    assert seen == [{"trace_id": trace_id, "task_id": task_id, "arg": task_id}]
    assert tracing.current() == {}


def test_unreachable_broker_raises_dispatch_error(runtime_with: Callable[..., Runtime]) -> None:
    from errors import DispatchError

    down = runtime_with(JCT_BROKER_URL="amqp://guest:guest@127.0.0.1:1/%2F")
    with pytest.raises(DispatchError, match="broker refused"):
        down.broker.send_task(str(uuid.uuid4()), tracing.new_trace_id())


def test_many_messages_sent_at_once_each_reach_the_actor_with_their_trace(
        broker_runtime: Runtime) -> None:
    """A batch's wake-ups (on RabbitMQ one AMQP transaction) arrive one each, every one with
    its own task and trace in its options."""
    seen = _recording_actor(broker_runtime)
    tasks = [(str(uuid.uuid4()), tracing.new_trace_id()) for _ in range(25)]
    broker_runtime.broker.send_messages([broker_runtime.broker.message(task_id, trace_id)
                                         for task_id, trace_id in tasks])
    _work_until(broker_runtime, lambda: len(seen) >= len(tasks), "25 deliveries")
    assert sorted((s["arg"], s["task_id"], s["trace_id"]) for s in seen) == sorted(
        (task_id, task_id, trace_id) for task_id, trace_id in tasks)


def test_a_batch_the_broker_refuses_raises_dispatch_error(
        runtime_with: Callable[..., Runtime]) -> None:
    from errors import DispatchError

    down = runtime_with(JCT_BROKER_URL="amqp://guest:guest@127.0.0.1:1/%2F")
    with pytest.raises(DispatchError, match="broker refused"):
        down.broker.send_messages([down.broker.message(str(uuid.uuid4()), tracing.new_trace_id())
                                   for _ in range(3)])


@pytest.mark.parametrize(("prepared", "expected"), [("true", "off"), ("false", "on")])
def test_the_pg_brokers_own_commits_skip_the_flush_wait_unless_behind_a_pooler(
        runtime_with: Callable[..., Runtime], prepared: str, expected: str) -> None:
    """The broker's take, ack and re-sends are wake-up state (broker.pg_broker_pool); the tower's
    own connections keep synchronous commits. Behind a transaction-mode pooler (prepared
    statements off) a session setting would leak to other clients, so none is made."""
    rt = runtime_with(JCT_DATABASE_PREPARED_STATEMENTS=prepared)
    pool = rt.broker.dramatiq.pool  # type: ignore[attr-defined]
    with pool.connection() as conn:
        assert conn.execute("SHOW synchronous_commit").fetchone() == (expected,)
    with rt.db.connection():
        assert rt.db.one("SHOW synchronous_commit") == ("on",)
