"""The seed's six Sprint-0 acceptance criteria, each a named test, against the processes
``make run`` starts (``jct up``: gunicorn + dramatiq + embedded PostgreSQL + rclone S3), once per
broker (the PostgreSQL broker and RabbitMQ)."""

from __future__ import annotations

import re
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from harness.downstream import Downstream
from harness.stack import Stack
from harness.wait import wait_until
from storage.s3 import metadata_value

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def _spec(downstream: Downstream, name: str = "restart-web") -> dict[str, Any]:
    return {"name": name, "steps": [
        {"action": "http", "params": {"method": "POST", "url": f"{downstream.url}/hook/{name}",
                                      "json": {"x": 1}}},
        {"action": "echo", "params": {"message": "hello"}},
    ], "labels": {"team": "web"}}


def _enqueue_and_finish(stack: Stack, downstream: Downstream) -> tuple[str, str, dict[str, Any]]:
    response = stack.post("/enqueue", json=_spec(downstream, uuid.uuid4().hex[:8]))
    assert response.status_code == 202, response.text
    body = response.json()
    return body["task_id"], body["trace_id"], stack.wait_status(body["task_id"])


def test_1_enqueue_returns_a_trace_id(stack: Stack, downstream: Downstream) -> None:
    """POST /enqueue answers 202 with task_id and trace_id; the header and Location agree."""
    response = stack.post("/enqueue", json=_spec(downstream))
    assert response.status_code == 202
    body = response.json()
    assert UUID.match(body["trace_id"]) and UUID.match(body["task_id"])
    assert body["status"] == "queued"
    assert response.headers["X-Trace-Id"] == body["trace_id"]
    assert response.headers["Location"] == f"/tasks/{body['task_id']}"


def test_2_database_has_the_task_row_with_that_trace_id(stack: Stack, downstream: Downstream) -> None:
    response = stack.post("/enqueue", json=_spec(downstream))
    body = response.json()
    rows = stack.query("SELECT id::text, trace_id::text, name, spec->'steps'->1->>'action' FROM tasks"
                       " WHERE id = %s", body["task_id"])
    assert rows == [(body["task_id"], body["trace_id"], "restart-web", "echo")]
    events = stack.query("SELECT event FROM task_events WHERE trace_id = %s ORDER BY id", body["trace_id"])
    assert events[0] == ("task_enqueued",)


def test_3_worker_processes_the_task_and_logs_lines_with_that_trace_id(
        stack: Stack, downstream: Downstream) -> None:
    task_id, trace_id, task = _enqueue_and_finish(stack, downstream)
    assert task["status"] == "done", task
    assert task["jobs"][0]["worker"].split(":")[0]
    worker_lines = wait_until(
        lambda: [r for r in stack.log_lines(trace_id) if r["component"] == "worker"
                 and r.get("event") == "task_done"] and
        [r for r in stack.log_lines(trace_id) if r["component"] == "worker"],
        timeout=10, what="the worker's task_done line")
    assert len(worker_lines) >= 5
    assert {r["task_id"] for r in worker_lines} == {task_id}
    events = [r["event"] for r in worker_lines]
    for expected in ("message_received", "task_claimed", "action_started", "http_request",
                     "http_response", "action_finished", "artifact_stored", "task_done"):
        assert expected in events, (expected, events)


def test_4_worker_creates_artifact_rows_with_that_trace_id(stack: Stack, downstream: Downstream) -> None:
    task_id, trace_id, task = _enqueue_and_finish(stack, downstream)
    rows = stack.query("SELECT kind, uri, trace_id::text, task_id::text, job_id::text FROM artifacts"
                       " WHERE trace_id = %s ORDER BY created_at", trace_id)
    assert [r[0] for r in rows] == ["report", "log"]
    assert all(r[2] == trace_id and r[3] == task_id for r in rows)
    _, uri, _, _, job_id = rows[1]
    bucket = stack.state["s3_bucket"]
    assert uri == f"s3://{bucket}/{trace_id}/{task_id}/{job_id}/worker.log.jsonl"
    s3 = boto3.client("s3", endpoint_url=stack.state["s3_endpoint"], region_name="us-east-1",
                      aws_access_key_id=stack.state["s3_access_key"],
                      aws_secret_access_key=stack.state["s3_secret_key"],
                      config=Config(s3={"addressing_style": "path"}))
    head = s3.head_object(Bucket=bucket, Key=uri.removeprefix(f"s3://{bucket}/"))
    assert metadata_value(head["Metadata"], "trace-id") == trace_id
    assert metadata_value(head["Metadata"], "task-id") == task_id
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=f"{trace_id}/")["Contents"]
    assert len(listed) == 2, "browsing the bucket by trace id prefix finds the whole trace"
    content = stack.get(f"/artifacts/{task['artifacts'][1]['id']}/content")
    assert content.status_code == 200 and trace_id in content.text


def test_5_healthz_responds_200(stack: Stack) -> None:
    response = stack.get("/healthz")
    assert response.status_code == 200
    assert response.json()["ok"] is True and response.json()["checks"]["db"] == "ok"
    assert UUID.match(response.headers["X-Trace-Id"])


def test_6_grep_logs_by_trace_id_reconstructs_the_timeline(stack: Stack, downstream: Downstream) -> None:
    """The shared log file alone tells the story in order: API accepted, worker ran, done."""
    _, trace_id, _ = _enqueue_and_finish(stack, downstream)
    wait_until(lambda: any(r.get("event") == "task_done" for r in stack.log_lines(trace_id)),
               timeout=10, what="task_done in the log file")
    grepped = [line for line in stack.log_file.read_text().splitlines() if trace_id in line]
    lines = stack.log_lines(trace_id)
    assert len(grepped) == len(lines) >= 10
    events = [r["event"] for r in sorted(lines, key=lambda r: r["ts"])]
    assert events.index("task_enqueued") < events.index("task_claimed") < events.index("task_done")
    assert {r["component"] for r in lines} == {"api", "worker"}
    cli = subprocess.run([str(Path(sys.executable).parent / "jct"), "logs", trace_id, "--file",
                          str(stack.log_file)], capture_output=True, text=True, check=True)
    told = [line.split()[2] for line in cli.stdout.splitlines()]
    assert told == events


def test_downstream_calls_carry_the_trace(stack: Stack, downstream: Downstream) -> None:
    _, trace_id, _ = _enqueue_and_finish(stack, downstream)
    (hook,) = [r for r in downstream.requests if r.headers.get("X-Trace-Id") == trace_id]
    assert re.fullmatch(rf"00-{trace_id.replace('-', '')}-[0-9a-f]{{16}}-01", hook.headers["traceparent"])


def test_a_callers_trace_id_is_adopted(stack: Stack, downstream: Downstream) -> None:
    given = uuid.uuid4()
    response = stack.post("/enqueue", json=_spec(downstream), headers={"x-trace-id": given.hex.upper()})
    assert response.status_code == 202 and response.json()["trace_id"] == str(given)
    parent = f"00-{uuid.uuid4().hex}-00f067aa0ba902b7-01"
    adopted = stack.post("/enqueue", json=_spec(downstream), headers={"traceparent": parent})
    assert adopted.json()["trace_id"].replace("-", "") == parent[3:35]


def test_bad_input_gets_a_clear_4xx_and_writes_nothing(stack: Stack) -> None:
    before = stack.query("SELECT count(*) FROM tasks")
    cases = [
        ({"data": "{", "headers": {"Content-Type": "application/json"}}, 400, "malformed_json"),
        ({"json": {"steps": []}, "headers": {"X-Trace-Id": "nope"}}, 400, "invalid_trace_id"),
        ({"data": "steps=1", "headers": {"Content-Type": "application/x-www-form-urlencoded"}}, 415,
         "unsupported_media_type"),
        ({"json": {"steps": [{"action": "echo"}]}}, 422, "invalid_spec"),
        ({"json": {"steps": [{"action": "rm-rf"}]}}, 422, "unknown_action"),
        ({"data": '{"steps": "' + "x" * (1024 * 1024) + '"}',
          "headers": {"Content-Type": "application/json"}}, 413, "payload_too_large"),
    ]
    for kwargs, status, code in cases:
        response = stack.post("/enqueue", **kwargs)
        assert (response.status_code, response.json()["error"]) == (status, code), response.text
        assert UUID.match(response.headers["X-Trace-Id"])
    assert stack.get(f"/tasks/{uuid.uuid4()}").status_code == 404
    assert stack.query("SELECT count(*) FROM tasks") == before


def test_a_failing_task_says_why_in_rows_events_and_logs(stack: Stack) -> None:
    response = stack.post("/enqueue", json={"steps": [{"action": "fail", "params": {"message": "disk full"}}],
                                            "max_attempts": 2})
    task = stack.wait_status(response.json()["task_id"], ("failed",))
    assert task["error"] == "step 0 (fail): disk full"
    assert [j["status"] for j in task["jobs"]] == ["failed", "failed"]
    assert [a["kind"] for a in task["artifacts"]] == ["log", "log"]
    events = [e["event"] for e in task["events"]]
    assert events.count("task_claimed") == 2 and "retry_scheduled" in events and events[-1] == "task_failed"
    failed_lines = wait_until(lambda: [r for r in stack.log_lines(task["trace_id"])
                                       if r.get("event") == "task_failed"], timeout=10,
                              what="task_failed log line")
    assert failed_lines[0]["level"] == "error" and "disk full" in failed_lines[0]["message"]
