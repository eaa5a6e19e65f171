"""The fault-drill tier: each test starts its own ``jct up`` (and its own RabbitMQ node or S3
server where it must break one), breaks something with real signals and real outages, and
checks the task rows, attempts, events and JSON log lines that prove nothing was lost."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from drills import rabbitmq
from drills.postgres import EmbeddedPostgres
from drills.stack import resume_all, start_drill_stack
from harness.stack import Stack
from harness.wait import wait_until
from tests.support.services import in_ci

StartStack = Callable[..., Stack]


@pytest.fixture
def drill_stack(tmp_path: Path) -> Iterator[StartStack]:
    """``drill_stack(**env)`` starts a drill stack; all of them are stopped after the test, even
    one with a paused worker."""
    started: list[Stack] = []

    def start(**env: str) -> Stack:
        stack = start_drill_stack(tmp_path / f"home{len(started)}", **env)
        started.append(stack)
        return stack

    yield start
    for stack in started:
        resume_all(stack)
        stack.stop()
        _stop_restarted_postgres(stack)


def _stop_restarted_postgres(stack: Stack) -> None:
    """``jct up`` stops the embedded PostgreSQL it started, but not one a drill started again
    after stopping it (the wheel only stops the server process it knows)."""
    if not (stack.home / "pgdata" / "PG_VERSION").exists() or "database_url" not in stack.state:
        return
    server = EmbeddedPostgres.of(stack.home, stack.database_url)
    if server.running():
        server.stop()


@pytest.fixture
def rabbitmq_node() -> Iterator[rabbitmq.RabbitmqNode]:
    """A private RabbitMQ node (own name, ports, data). Skips where RabbitMQ is not installed,
    but fails under CI=true."""
    if not rabbitmq.installed():
        message = "rabbitmq-server is not installed; the RabbitMQ outage drill needs a private node"
        if in_ci():
            pytest.fail(f"{message}; under CI=true it must run, not skip")
        pytest.skip(message)
    node = rabbitmq.RabbitmqNode.create()
    try:
        node.start()
        yield node
    finally:
        node.close()


def enqueue(stack: Stack, spec: dict[str, Any]) -> tuple[str, str]:
    """POST /enqueue; returns ``(task_id, trace_id)``."""
    response = stack.post("/enqueue", json=spec)
    assert response.status_code == 202, response.text
    body = response.json()
    return body["task_id"], body["trace_id"]


def sleep_spec(seconds: float, *, max_attempts: int = 1, name: str = "drill") -> dict[str, Any]:
    return {"name": name, "max_attempts": max_attempts,
            "steps": [{"action": "sleep", "params": {"seconds": seconds}}]}


def log_events(stack: Stack, event: str, **fields: str) -> list[dict[str, Any]]:
    """JSON log lines of ``event`` whose fields match."""
    return [line for line in stack.log_lines() if line.get("event") == event
            and all(line.get(k) == v for k, v in fields.items())]


def wait_log_event(stack: Stack, event: str, *, timeout: float = 30,
                   **fields: str) -> list[dict[str, Any]]:
    return wait_until(lambda: log_events(stack, event, **fields), timeout=timeout, interval=0.2,
                      what=f"log event {event} {fields}")


def jobs_of(task: dict[str, Any]) -> list[tuple[str, str | None]]:
    """``(status, error)`` of each attempt, in order."""
    return [(job["status"], job["error"]) for job in task["jobs"]]


def events_of(task: dict[str, Any]) -> list[str]:
    return [event["event"] for event in task["events"]]
