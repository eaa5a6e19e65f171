"""JSON log lines carry the bound trace context, whoever logs them."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import tracing
from logging_setup import configure_logging, log_event


def _lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_every_line_gets_trace_fields_and_contract_keys(tmp_path: Path) -> None:
    log_file = tmp_path / "logs" / "jct.jsonl"
    configure_logging("worker", log_file)
    try:
        with tracing.bound(trace_id="4bf92f35-77b3-4da6-a3ce-929d0e0e4736", task_id="t-1", job_id="j-1"):
            log_event(logging.getLogger("jct.test"), "task_claimed", "claimed", attempt=1, name="x")
            logging.getLogger("dramatiq.worker").warning("third-party line")
        logging.getLogger("jct.test").info("outside any trace")
    finally:
        configure_logging("test", None)
    first, second, third = _lines(log_file)
    for key in ("ts", "level", "logger", "event", "message", "component"):
        assert key in first
    assert first["event"] == "task_claimed" and first["attempt"] == 1 and first["name_"] == "x"
    assert first["component"] == "worker"
    assert str(first["ts"]).endswith("+00:00")
    assert (first["trace_id"], first["task_id"], first["job_id"]) == (
        "4bf92f35-77b3-4da6-a3ce-929d0e0e4736", "t-1", "j-1")
    assert second["trace_id"] == first["trace_id"] and second["logger"] == "dramatiq.worker"
    assert second["event"] == "log"
    assert "trace_id" not in third


def test_attempt_collector_keeps_only_that_attempts_lines() -> None:
    attempt_logs = configure_logging("worker", None)
    try:
        attempt_logs.start("j-1")
        with tracing.bound(job_id="j-1"):
            log_event(logging.getLogger("jct.test"), "action_started", "mine")
        with tracing.bound(job_id="j-2"):
            log_event(logging.getLogger("jct.test"), "action_started", "not mine")
        lines = attempt_logs.take("j-1")
    finally:
        configure_logging("test", None)
    assert [json.loads(line)["message"] for line in lines] == ["mine"]
    assert attempt_logs.take("j-1") == []
