"""Drills: PostgreSQL goes away — for ~10 s under load, in the middle of an attempt, in the
middle of an enqueue — and comes back."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from typing import Any

import requests

from drills.postgres import EmbeddedPostgres
from drills.rabbitmq import RabbitmqNode
from drills.stack import running_job, wait_worker_processes, worker_processes
from harness.stack import Stack
from harness.wait import wait_until
from tests.faults.conftest import StartStack, enqueue, jobs_of, log_events

OUTAGE_S = 10.0
ECHO_SPEC = {"name": "half", "steps": [{"action": "echo", "params": {"message": "half"}}]}


@dataclass
class Answer:
    at: float
    path: str
    status: int
    error: str | None
    trace_id: str | None = None
    task_id: str | None = None
    took_s: float = 0.0


class Load(threading.Thread):
    """Enqueues a short task and probes /healthz in a loop, recording every answer."""

    def __init__(self, stack: Stack) -> None:
        super().__init__(name="drill-load", daemon=True)
        self.stack = stack
        self.answers: list[Answer] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        index = 0
        while not self.stopping.is_set() and index < 5000:
            index += 1
            self._call("/enqueue", {"name": f"load-{index}", "steps": [
                {"action": "sleep", "params": {"seconds": 0.3}},
                {"action": "echo", "params": {"message": f"load {index}"}}]})
            self._call("/healthz", None)
            self.stopping.wait(0.05)

    def _call(self, path: str, spec: dict[str, Any] | None) -> None:
        sent = time.monotonic()
        try:
            if spec is None:
                response = requests.get(self.stack.api_url + path, timeout=15)
            else:
                response = requests.post(self.stack.api_url + path, json=spec, timeout=15)
        except requests.RequestException as exc:  # recorded as status 0: never expected
            self.answers.append(Answer(sent, path, 0, type(exc).__name__,
                                       took_s=time.monotonic() - sent))
            return
        body = response.json() if response.headers.get("Content-Type") == "application/json" else {}
        self.answers.append(Answer(
            sent, path, response.status_code, body.get("error"),
            trace_id=response.headers.get("X-Trace-Id"),
            task_id=body.get("task_id") if response.status_code == 202 else None,
            took_s=time.monotonic() - sent))


def test_a_postgres_outage_answers_503_never_500_and_every_accepted_task_completes(
        drill_stack: StartStack) -> None:
    """While PostgreSQL is stopped (~10 s, under a steady enqueue load), ``/healthz`` answers
    503 and ``POST /enqueue`` 503 ``{"error": "unavailable"}`` — never a 500, never a hang.
    When it is back the API answers 202 again without a restart, the workers reconnect on
    their own, and every task that was accepted (202), before, during or after the outage,
    completes."""
    stack = drill_stack(JCT_LEASE_S="3")
    server = EmbeddedPostgres.of(stack.home, stack.database_url)
    workers_before = {p.pid for p in wait_worker_processes(stack, 2)}
    load = Load(stack)
    load.start()
    try:
        wait_until(lambda: len(_accepted(load)) >= 20, timeout=30, what="20 tasks accepted")
        stop_at = time.monotonic()
        server.stop()
        stopped_at = time.monotonic()
        wait_until(lambda: time.monotonic() - stop_at >= OUTAGE_S, timeout=OUTAGE_S + 5,
                   interval=0.2, what="the outage to last")
        restart_at = time.monotonic()
        server.start()
        back_at = time.monotonic()
        wait_until(lambda: len([a for a in load.answers if a.at > back_at + 2
                                and a.status == 202]) >= 10,
                   timeout=60, what="10 tasks accepted after the outage")
    finally:
        load.stopping.set()
        load.join(30)
        server.start_if_stopped()

    statuses = Counter((a.path, a.status) for a in load.answers)
    during = [a for a in load.answers if stopped_at < a.at and a.at + a.took_s < restart_at]
    assert all(a.status in (200, 202, 503) for a in load.answers), statuses
    assert {(a.path, a.status, a.error) for a in during} == {
        ("/healthz", 503, None), ("/enqueue", 503, "unavailable")}, statuses
    refused = [a.trace_id for a in load.answers if a.path == "/enqueue" and a.status == 503]
    # A 503 for a task that was written can only come from a commit whose acknowledgement was
    # lost with the server (microseconds wide; Idempotency-Key makes the retry safe). The wider
    # window after the commit is closed and proven by the test below; here it is counted.
    half_written = stack.query("SELECT count(*) FROM tasks WHERE trace_id = ANY(%s::uuid[])",
                               refused)[0][0]
    accepted = _accepted(load)
    ended = wait_until(lambda: _all_ended(stack, accepted), timeout=120, interval=1,
                       what=f"the {len(accepted)} accepted tasks to end")
    assert ended == {"done": len(accepted)}, ended
    assert stack.query(
        "SELECT count(*) FROM jobs WHERE task_id = ANY(%s::uuid[]) AND status = 'done'",
        accepted) == [(len(accepted),)], "one done attempt per task"
    # The workers rode the outage out: reconnected, not restarted.
    assert not log_events(stack, "child_restarted")
    assert {p.pid for p in worker_processes(stack)} == workers_before
    lost = stack.query("SELECT count(*) FROM jobs WHERE task_id = ANY(%s::uuid[])"
                       " AND status = 'lost'", accepted)[0][0]
    print(f"postgres drill: down {back_at - stopped_at:.1f}s (stop took {stopped_at - stop_at:.2f}s);"
          f" {dict(statuses)}; accepted {len(accepted)}, refused {len(refused)};"
          f" slowest answer {max(a.took_s for a in load.answers):.2f}s;"
          f" attempts cut by the outage and rescued: {lost}; 503s that created a task: {half_written}")


def _accepted(load: Load) -> list[str]:
    return [a.task_id for a in load.answers if a.task_id]


def _all_ended(stack: Stack, task_ids: list[str]) -> dict[str, int] | None:
    rows = stack.query("SELECT status, count(*) FROM tasks WHERE id = ANY(%s::uuid[])"
                       " GROUP BY status", task_ids)
    counts = {str(status): int(n) for status, n in rows}
    return counts if not set(counts) & {"queued", "running"} else None


def test_an_attempt_running_through_a_short_postgres_outage_is_recorded_once_it_returns(
        drill_stack: StartStack) -> None:
    """A worker that keeps running while PostgreSQL is briefly away (a second or two, inside a
    6 s step) backs off and reconnects: the attempt it is running is not abandoned, its completion is
    recorded when the database answers again, and a task allowed one attempt ends ``done``."""
    stack = drill_stack(JCT_LEASE_S="3")
    server = EmbeddedPostgres.of(stack.home, stack.database_url)
    task_id, _ = enqueue(stack, {"name": "through-the-outage", "max_attempts": 1,
                                 "steps": [{"action": "sleep", "params": {"seconds": 6}}]})
    running_job(stack, task_id)
    server.stop()
    try:
        wait_until(lambda: log_events(stack, "heartbeat_failed"), timeout=10,
                   what="the worker to notice the outage")
    finally:
        server.start()
    task = stack.wait_status(task_id, timeout=60)
    assert (task["status"], jobs_of(task)) == ("done", [("done", None)]), (
        task["status"], task["error"], jobs_of(task))


def test_a_503_from_enqueue_during_a_postgres_outage_leaves_no_task_behind(
        drill_stack: StartStack, rabbitmq_node: RabbitmqNode) -> None:
    """When PostgreSQL goes away in the middle of ``POST /enqueue``, the answer and the data
    agree: either 202 and the task runs, or 503 ``unavailable`` and nothing was written, so a
    client may safely retry a 503. (The broker is paused for a moment so the database stop
    lands between the task's insert and the end of the request, every time.)"""
    stack = drill_stack(JCT_BROKER_URL=rabbitmq_node.url, JCT_QUEUE="jct_drill_half")
    server = EmbeddedPostgres.of(stack.home, stack.database_url)
    trace_id = str(uuid.uuid4())
    answer: dict[str, Any] = {}
    rabbitmq_node.pause()
    try:
        request = threading.Thread(target=lambda: answer.update(response=stack.post(
            "/enqueue", json=ECHO_SPEC, headers={"X-Trace-Id": trace_id})), daemon=True)
        request.start()
        wait_until(lambda: stack.query("SELECT 1 FROM tasks WHERE trace_id = %s", trace_id),
                   timeout=30, what="the task row (the request now waits on the broker)")
        server.stop()
    finally:
        rabbitmq_node.resume()
    request.join(60)
    server.start()
    response = answer["response"]
    written = stack.query("SELECT id::text FROM tasks WHERE trace_id = %s", trace_id)
    if response.status_code == 202:
        stack.wait_status(response.json()["task_id"])
    else:
        assert (response.status_code, response.json()["error"]) == (503, "unavailable")
        assert written == [], f"503 answered, yet task {written} was written (and will run)"
