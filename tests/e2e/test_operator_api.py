"""The operator's API against the real stack: one task's whole story, lists and paging, trace
timelines, artifacts, cancel and retry, idempotent enqueue, and the CLI's view of the same."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

from harness.downstream import Downstream
from harness.stack import Stack
from harness.wait import wait_until

JCT = str(Path(sys.executable).parent / "jct")


def _enqueue(stack: Stack, spec: dict[str, Any], **headers: str) -> dict[str, Any]:
    response = stack.post("/enqueue", json=spec, headers=headers)
    assert response.status_code == 202, response.text
    return response.json()  # type: ignore[no-any-return]


def _jct(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JCT_")}
    env["JCT_HOME"] = str(stack.home)
    return subprocess.run([JCT, *args], env=env, capture_output=True, text=True, timeout=60,
                          check=False)


def test_a_task_tells_its_whole_story(postgres_stack: Stack, downstream: Downstream) -> None:
    body = _enqueue(postgres_stack, {"name": "story", "steps": [
        {"action": "http", "params": {"url": f"{downstream.url}/status/201", "expect_status": [201]}},
        {"action": "echo", "params": {"message": "after"}}]})
    task = postgres_stack.wait_status(body["task_id"])
    assert task["status"] == "done"
    assert task["diagnosis"] == {"code": "done", "message": "Finished after 1 attempt(s)."}
    (job,) = task["jobs"]
    assert job["status"] == "done" and job["duration_ms"] >= 0 and job["worker"]
    http, echo = task["actions"]
    assert (http["action_name"], http["downstream_status"], http["status"]) == ("http", 201, "ok")
    assert http["duration_ms"] is not None and echo["action_name"] == "echo"
    report = next(a for a in task["artifacts"] if a["id"] == http["result_artifact_id"])
    meta = postgres_stack.get(f"/artifacts/{report['id']}").json()
    assert meta["kind"] == "report" and meta["trace_id"] == body["trace_id"]
    content = postgres_stack.get(report["content_url"])
    assert content.headers["Content-Type"] == "application/json"
    assert content.json()["response"]["status"] == 201
    stamps = [e["ts"] for e in task["events"]]
    assert stamps == sorted(stamps)


def test_lists_filter_and_page_stably(postgres_stack: Stack) -> None:
    label = uuid.uuid4().hex[:8]
    ids = [_enqueue(postgres_stack, {"name": f"page-{i}", "labels": {"batch": label},
                                     "steps": [{"action": "echo", "params": {"message": "x"}}]})["task_id"]
           for i in range(5)]
    seen: list[str] = []
    cursor = None
    for _ in range(5):
        params = {"label": f"batch:{label}", "limit": 2, **({"cursor": cursor} if cursor else {})}
        page = postgres_stack.get("/tasks", params=params).json()
        seen += [t["id"] for t in page["tasks"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(ids)), "newest first, each task exactly once"
    named = postgres_stack.get("/tasks", params={"name": "page-3"}).json()["tasks"]
    assert ids[3] in [t["id"] for t in named]
    assert postgres_stack.get("/tasks", params={"status": "bogus"}).status_code == 400
    assert postgres_stack.get("/tasks", params={"cursor": "nonsense!"}).status_code == 400


def test_a_trace_merges_its_tasks_into_one_timeline(postgres_stack: Stack) -> None:
    trace_id = str(uuid.uuid4())
    response = postgres_stack.post("/enqueue/batch", headers={"X-Trace-Id": trace_id}, json={"tasks": [
        {"name": "one", "steps": [{"action": "echo", "params": {"message": "1"}}]},
        {"name": "two", "steps": [{"action": "echo", "params": {"message": "2"}}]}]})
    assert response.status_code == 202
    tasks = response.json()["tasks"]
    assert {t["trace_id"] for t in tasks} == {trace_id}
    for task in tasks:
        postgres_stack.wait_status(task["task_id"])
    trace = postgres_stack.get(f"/traces/{trace_id}").json()
    assert {t["id"] for t in trace["tasks"]} == {t["task_id"] for t in tasks}
    stamps = [item["ts"] for item in trace["timeline"]]
    assert stamps == sorted(stamps)
    assert {item["type"] for item in trace["timeline"]} == {"event", "action", "artifact"}
    assert {item["task_id"] for item in trace["timeline"]} == {t["task_id"] for t in tasks}
    assert postgres_stack.get(f"/traces/{uuid.uuid4()}").status_code == 404


def test_cancel_stops_a_running_sleep_and_says_who(postgres_stack: Stack) -> None:
    body = _enqueue(postgres_stack, {"steps": [{"action": "sleep", "params": {"seconds": 60}}]})
    postgres_stack.wait_status(body["task_id"], ("running",), timeout=30)
    response = postgres_stack.post(f"/tasks/{body['task_id']}/cancel")
    assert response.status_code == 202 and response.json()["cancel_requested"] is True
    task = postgres_stack.wait_status(body["task_id"], ("cancelled",), timeout=15)
    assert task["jobs"][-1]["status"] == "cancelled"
    assert task["diagnosis"]["code"] == "cancelled" and "anonymous" in task["diagnosis"]["message"]
    events = [e["event"] for e in task["events"]]
    assert events.index("cancel_requested") < events.index("task_cancelled")
    again = postgres_stack.post(f"/tasks/{body['task_id']}/cancel")
    assert (again.status_code, again.json()["error"]) == (409, "illegal_transition")


def test_retry_gives_a_failed_task_a_new_attempt_on_the_same_trace(postgres_stack: Stack) -> None:
    body = _enqueue(postgres_stack, {"steps": [{"action": "fail", "params": {"message": "nope"}}],
                                     "max_attempts": 1})
    failed = postgres_stack.wait_status(body["task_id"], ("failed",))
    assert failed["diagnosis"] == {"code": "failed",
                                   "message": "Failed after 1 attempt(s): step 0 (fail): nope."}
    response = postgres_stack.post(f"/tasks/{body['task_id']}/retry")
    assert response.status_code == 202 and response.json()["trace_id"] == body["trace_id"]
    again = wait_until(lambda: (t := postgres_stack.get(f"/tasks/{body['task_id']}").json())["attempts"] == 2
                       and t["status"] == "failed" and t, timeout=30, what="the retried attempt")
    assert [j["attempt"] for j in again["jobs"]] == [1, 2]
    assert {j["trace_id"] for j in again["jobs"]} == {body["trace_id"]}
    assert "task_retried" in [e["event"] for e in again["events"]]
    done = _enqueue(postgres_stack, {"steps": [{"action": "echo", "params": {"message": "x"}}]})
    postgres_stack.wait_status(done["task_id"], ("done",))
    assert postgres_stack.post(f"/tasks/{done['task_id']}/retry").status_code == 409
    assert postgres_stack.post(f"/tasks/{uuid.uuid4()}/retry").status_code == 404


def test_idempotency_key_returns_the_original_task(postgres_stack: Stack) -> None:
    spec = {"steps": [{"action": "echo", "params": {"message": "once"}}]}
    key = uuid.uuid4().hex
    first = postgres_stack.post("/enqueue", json=spec, headers={"Idempotency-Key": key})
    again = postgres_stack.post("/enqueue", json=spec, headers={"Idempotency-Key": key})
    other = postgres_stack.post("/enqueue", json={"steps": [{"action": "echo", "params": {"message": "2"}}]},
                                headers={"Idempotency-Key": key})
    assert first.status_code == 202 and again.status_code == 200
    assert again.json()["task_id"] == first.json()["task_id"]
    assert again.headers["X-Trace-Id"] == first.json()["trace_id"]
    assert (other.status_code, other.json()["error"]) == (409, "conflict")


def test_the_cli_tells_the_same_story_from_the_database_and_from_the_log(postgres_stack: Stack) -> None:
    body = _enqueue(postgres_stack, {"name": "cli",
                                     "steps": [{"action": "echo", "params": {"message": "x"}}]})
    postgres_stack.wait_status(body["task_id"])
    wait_until(lambda: any(r["event"] == "task_done" for r in postgres_stack.log_lines(body["trace_id"])),
               timeout=10, what="task_done in the log")
    trace = postgres_stack.get(f"/traces/{body['trace_id']}").json()
    # The API logs task_dispatched after its commit, which may land after the worker's claim
    # line; every other event is causally ordered and must appear in the same order.
    db_events = [i["event"] for i in trace["timeline"]
                 if i["type"] == "event" and i["event"] != "task_dispatched"]

    from_db = _jct(postgres_stack, "trace", body["trace_id"])
    assert from_db.returncode == 0, from_db.stderr
    assert [line.split()[2] for line in from_db.stdout.splitlines()[1:]] == [
        i["event"] for i in trace["timeline"]]

    from_log = _jct(postgres_stack, "logs", body["trace_id"])
    assert from_log.returncode == 0, from_log.stderr
    log_events = [line.split()[2] for line in from_log.stdout.splitlines()]
    cursor = 0
    for event in db_events:  # the database timeline is a subsequence of the log's
        cursor = log_events.index(event, cursor) + 1

    shown = _jct(postgres_stack, "task", body["task_id"])
    assert shown.returncode == 0 and body["trace_id"] in shown.stdout and "done" in shown.stdout
    missing = _jct(postgres_stack, "task", str(uuid.uuid4()))
    assert missing.returncode != 0 and missing.stderr.startswith("jct: no task")


def test_each_attempt_names_the_worker_that_held_it(postgres_stack: Stack) -> None:
    """Host, pid and the machine's boot id of the worker process that ran the attempt: in the
    API, and on the console's task page."""
    created = _enqueue(postgres_stack, {"steps": [{"action": "echo", "params": {"message": "who"}}]})
    task = postgres_stack.wait_status(created["task_id"])
    (job,) = task["jobs"]
    host, pid = job["worker"].rsplit(":", 1)
    boot_id = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    assert (job["worker_host"], job["worker_pid"], job["worker_boot_id"]) == (host, int(pid), boot_id)
    page = postgres_stack.get(f"/ui/tasks/{created['task_id']}").text
    assert f'<td class="attempt-host">{host}</td>' in page and boot_id[:8] in page
