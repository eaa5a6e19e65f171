"""Drill: RabbitMQ stops while tasks are being enqueued, and comes back."""

from __future__ import annotations

import threading
import time
from typing import Any

from drills.rabbitmq import RabbitmqNode
from drills.stack import wait_worker_processes, worker_processes
from harness.stack import Stack
from harness.wait import wait_until
from tests.faults.conftest import StartStack, log_events

TASKS = 200


class Enqueuer(threading.Thread):
    """POST /enqueue one task at a time, recording (sent at, status, seconds taken, task id)."""

    def __init__(self, stack: Stack, count: int) -> None:
        super().__init__(name="drill-enqueuer", daemon=True)
        self.stack, self.count = stack, count
        self.answers: list[tuple[float, int, float, str | None]] = []

    def run(self) -> None:
        for index in range(self.count):
            spec = {"name": f"rmq-{index}", "steps": [{"action": "echo",
                                                       "params": {"message": f"rmq {index}"}}]}
            sent = time.monotonic()
            response = self.stack.post("/enqueue", json=spec)
            body = response.json()
            self.answers.append((sent, response.status_code, time.monotonic() - sent,
                                 body.get("task_id")))
            time.sleep(0.02)  # a steady stream, not a burst: the outage lands mid-stream

    def accepted(self) -> int:
        return sum(1 for answer in self.answers if answer[1] == 202)


def test_enqueue_keeps_accepting_while_rabbitmq_is_down_and_every_task_runs_once_it_returns(
        drill_stack: StartStack, rabbitmq_node: RabbitmqNode) -> None:
    """With the RabbitMQ broker stopped in the middle of enqueueing 200 tasks, ``POST /enqueue``
    keeps answering 202: the task rows are the truth, the messages only wake-ups, so a task
    whose message the broker refused is recorded with ``dispatch_failed``. When RabbitMQ is back
    the dispatcher re-sends them: all 200 tasks complete, none twice."""
    stack = drill_stack(JCT_BROKER_URL=rabbitmq_node.url, JCT_QUEUE="jct_drill",
                        JCT_DISPATCH_STALE_S="5")
    workers_before = {p.pid for p in wait_worker_processes(stack, 2)}
    enqueuer = Enqueuer(stack, TASKS)
    enqueuer.start()
    try:
        wait_until(lambda: enqueuer.accepted() >= 40, timeout=60, what="40 tasks accepted")
        rabbitmq_node.stop()
        down_from, before = time.monotonic(), enqueuer.accepted()
        wait_until(lambda: enqueuer.accepted() >= before + 60 or not enqueuer.is_alive(),
                   timeout=180, interval=0.2, what="60 more tasks accepted while RabbitMQ is down")
        restart_at = time.monotonic()
        rabbitmq_node.start()
        down_until = time.monotonic()
    finally:
        enqueuer.join(240)
    assert not enqueuer.is_alive()

    statuses = {answer[1] for answer in enqueuer.answers}
    assert statuses == {202}, f"every enqueue accepted: {statuses}"
    while_down = [a for a in enqueuer.answers if down_from <= a[0] and a[0] + a[2] < restart_at]
    assert len(while_down) >= 50, "a good share of the tasks was enqueued while RabbitMQ was down"
    task_ids = [a[3] for a in enqueuer.answers]
    refused = _with_event(stack, "dispatch_failed", [a[3] for a in while_down])
    assert refused == len(while_down), "each task enqueued during the outage has dispatch_failed"

    counts = wait_until(lambda: _ended(stack, task_ids), timeout=120, interval=1,
                        what=f"all {TASKS} tasks to end")
    assert counts == {"done": TASKS}, counts
    assert stack.query("SELECT count(*) FROM jobs WHERE task_id = ANY(%s::uuid[]) AND status"
                       " = 'done'", task_ids) == [(TASKS,)], "no task completed twice"
    # The workers rode the outage out: their consumers reconnected, nothing was restarted.
    assert not log_events(stack, "child_restarted")
    assert {p.pid for p in worker_processes(stack)} == workers_before
    resent = _with_event(stack, "task_redispatched", task_ids)
    refused = _with_event(stack, "dispatch_failed", task_ids)
    took = [a[2] for a in while_down]
    print(f"rabbitmq drill: down {down_until - down_from:.1f}s (restart took"
          f" {down_until - restart_at:.1f}s); {len(while_down)} enqueued while down,"
          f" {refused} tasks with dispatch_failed, {resent} re-sent by the dispatcher;"
          f" enqueue while down: median {sorted(took)[len(took) // 2]:.3f}s max {max(took):.3f}s;"
          f" otherwise: max {max(a[2] for a in enqueuer.answers if a not in while_down):.3f}s")


def _with_event(stack: Stack, event: str, task_ids: list[Any]) -> int:
    """How many of these tasks have ``event`` in their timeline."""
    return int(stack.query("SELECT count(DISTINCT task_id) FROM task_events WHERE event = %s"
                           " AND task_id = ANY(%s::uuid[])", event, task_ids)[0][0])


def _ended(stack: Stack, task_ids: list[Any]) -> dict[str, int] | None:
    rows = stack.query("SELECT status, count(*) FROM tasks WHERE id = ANY(%s::uuid[])"
                       " GROUP BY status", task_ids)
    counts = {str(status): int(n) for status, n in rows}
    return counts if not set(counts) & {"queued", "running"} else None
