"""Issue 9 on the real processes: the egress guard holds for the tower's own endpoints and
ambiguous URLs; secrets given by reference reach the downstream and nothing else; an http step
is bounded in time, in memory and by a cancel."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import psutil
import pytest
from botocore.config import Config

from harness.downstream import Downstream
from harness.stack import Stack, start_stack
from harness.wait import wait_until
from storage.s3 import key_from_uri

GH_TOKEN = "ghp_" + uuid.uuid4().hex            # from the secrets directory
DB_PASSWORD = "pw-" + uuid.uuid4().hex          # from JCT_SECRET_DB_PASSWORD
INLINE = "inline-" + uuid.uuid4().hex           # an Authorization value written in the spec
READ = {"Authorization": "Bearer read-token"}
OPERATE = {"Authorization": "Bearer operate-token"}
GIB = 1024 ** 3


@pytest.fixture(scope="module")
def secure_stack(tmp_path_factory: pytest.TempPathFactory, downstream: Downstream) -> Iterator[Stack]:
    """Tokens on, secrets from a directory and the environment, and an allowlist that names
    only the downstream's port on loopback (so the API and S3 ports there are refused)."""
    home = tmp_path_factory.mktemp("jct-sec") / "home"
    secrets = tmp_path_factory.mktemp("secrets")
    (secrets / "gh_token").write_text(GH_TOKEN + "\n")
    port = downstream.url.rsplit(":", 1)[1]
    stack = start_stack(home, JCT_SECRETS_DIR=str(secrets), JCT_SECRET_DB_PASSWORD=DB_PASSWORD,
                        JCT_API_TOKENS="viewer:read:read-token,bot:operate:operate-token",
                        JCT_HTTP_ALLOWED_HOSTS=f"127.0.0.1:{port}",
                        JCT_HTTP_MAX_RESPONSE_BYTES=str(2 * GIB), JCT_WORKERS="1")
    yield stack
    assert stack.stop() == 0


def _enqueue(stack: Stack, spec: dict[str, Any]) -> str:
    response = stack.post("/enqueue", json=spec, headers=OPERATE)
    assert response.status_code == 202, response.text
    return str(response.json()["task_id"])


def _wait(stack: Stack, task_id: str, statuses: tuple[str, ...] = ("done", "failed", "cancelled"),
          timeout: float = 90) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        task = stack.get(f"/tasks/{task_id}", headers=READ).json()
        return task if task["status"] in statuses else None

    return wait_until(probe, timeout=timeout, interval=0.2, what=f"task {task_id} in {statuses}")


def _objects(stack: Stack, task: dict[str, Any]) -> list[bytes]:
    s3 = boto3.client("s3", endpoint_url=stack.state["s3_endpoint"],
                      aws_access_key_id=stack.state["s3_access_key"],
                      aws_secret_access_key=stack.state["s3_secret_key"], region_name="us-east-1",
                      config=Config(s3={"addressing_style": "path"}))
    bucket = stack.state["s3_bucket"]
    return [s3.get_object(Bucket=bucket, Key=key_from_uri(a["uri"], bucket))["Body"].read()
            for a in task["artifacts"]]


def _rows_text(stack: Stack) -> str:
    tables = ("tasks", "jobs", "action_invocations", "artifacts", "task_events")
    return "\n".join(str(row[0]) for table in tables
                     for row in stack.query(f"SELECT t::text FROM {table} t"))


# ── secrets by reference ───────────────────────────────────────────────────────────────────


def test_a_secret_reaches_the_downstream_and_nothing_else(secure_stack: Stack,
                                                          downstream: Downstream) -> None:
    stack = secure_stack
    task_id = _enqueue(stack, {"name": "secrets", "steps": [{"action": "http", "params": {
        "method": "POST", "url": downstream.url + "/echo/secrets",
        "headers": {"X-Token": {"secret": "gh_token"}, "Authorization": f"Bearer {INLINE}"},
        "json": {"password": {"secret": "db_password"}, "user": "ops"}}}]})
    task = _wait(stack, task_id)
    assert task["status"] == "done", task["error"]

    (received,) = downstream.received("/echo/secrets")
    assert received.headers["X-Token"] == GH_TOKEN
    assert received.headers["Authorization"] == f"Bearer {INLINE}"
    assert json.loads(received.body) == {"password": DB_PASSWORD, "user": "ops"}

    referenced = (GH_TOKEN, DB_PASSWORD)
    everything = (*referenced, INLINE)
    rows = _rows_text(stack)
    assert not [s for s in referenced if s in rows], "a referenced secret reached a row"
    # An inline value must be stored to be sent; it is shown nowhere (checked below).
    assert rows.count(INLINE) == 1 and INLINE in str(stack.query(
        "SELECT spec::text FROM tasks WHERE id = %s", task_id)[0][0])
    log = stack.log_file.read_text(encoding="utf-8")
    assert not [s for s in everything if s in log], "a secret reached the log file"
    for blob in _objects(stack, task):
        assert not [s for s in everything if s.encode() in blob], "a secret reached an artifact"

    for headers in (READ, OPERATE):
        pages = [stack.get(f"/tasks/{task_id}", headers=headers).text,
                 stack.get(f"/traces/{task['trace_id']}", headers=headers).text,
                 stack.get(f"/ui/tasks/{task_id}", headers=headers).text]
        pages += [stack.get(f"/artifacts/{a['id']}/content", headers=headers).text
                  for a in task["artifacts"]]
        pages += [stack.get(f"/ui/artifacts/{a['id']}", headers=headers).text
                  for a in task["artifacts"]]
        shown = "\n".join(pages)
        assert not [s for s in everything if s in shown], "a secret reached the API or console"
    spec = stack.get(f"/tasks/{task_id}", headers=READ).json()["spec"]
    params = spec["steps"][0]["params"]
    assert params["headers"] == {"X-Token": {"secret": "gh_token"}, "Authorization": "***"}
    assert params["json"]["password"] == {"secret": "db_password"}


def test_an_unknown_secret_fails_the_step_naming_it(secure_stack: Stack,
                                                    downstream: Downstream) -> None:
    task_id = _enqueue(secure_stack, {"max_attempts": 1, "steps": [{"action": "http", "params": {
        "url": downstream.url + "/never", "headers": {"X-Token": {"secret": "missing_one"}}}}]})
    task = _wait(secure_stack, task_id)
    assert task["status"] == "failed" and "missing_one" in task["error"]
    assert downstream.received("/never") == []


# ── the egress guard ───────────────────────────────────────────────────────────────────────


def _refused_urls(stack: Stack) -> list[str]:
    api_port = stack.api_url.rsplit(":", 1)[1]
    s3_port = stack.state["s3_endpoint"].rsplit(":", 1)[1]
    return [
        f"http://127.0.0.1:{api_port}/healthz",              # the tower's own API
        f"http://127.0.0.1:{s3_port}/",                      # its S3 server
        f"http://[::ffff:127.0.0.1]:{api_port}/healthz",     # v4-mapped IPv6
        f"http://[::ffff:7f00:1]:{s3_port}/",                # the same, in hex groups
        "http://169.254.169.254/latest/meta-data/",          # cloud metadata
        "http://[::1]:80/",                                  # IPv6 loopback
        "http://localhost:80/",                              # a name for loopback
    ]


def test_the_towers_own_endpoints_and_private_addresses_are_refused(secure_stack: Stack) -> None:
    stack = secure_stack
    traces = set()
    for url in _refused_urls(stack):
        task_id = _enqueue(stack, {"max_attempts": 1, "name": "ssrf",
                                   "steps": [{"action": "http", "params": {"url": url}}]})
        task = _wait(stack, task_id)
        assert task["status"] == "failed", url
        assert "JCT_HTTP_ALLOWED_HOSTS" in task["error"], (url, task["error"])
        traces.add(task["trace_id"])
    reached = [line for line in stack.log_lines() if line.get("event") == "http_access"
               and line.get("trace_id") in traces and line.get("path") != "/enqueue"]
    assert reached == [], "a refused step reached the API"


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:1\\@127.0.0.1:2/",      # backslash: parsers disagree on the host
    "http://user:pw@127.0.0.1:1/",            # user-info
    "http://127.0.0.1:1/a\r\nHost: evil",     # control characters
    "http://[::1/",                           # an invalid IPv6 literal
    "http://2130706433:1/",                   # IPv4 as an integer,
    "http://0x7f.1:1/",                       # in hex, short:
    "http://127.1:1/",                        # refused at the edge, only dotted quads pass
])
def test_ambiguous_urls_are_refused_at_the_edge(secure_stack: Stack, url: str) -> None:
    response = secure_stack.post("/enqueue", headers=OPERATE,
                                 json={"steps": [{"action": "http", "params": {"url": url}}]})
    assert response.status_code == 422, response.text
    assert response.json()["detail"]["field"] == "steps[0].params.url"


# ── bounded calls ──────────────────────────────────────────────────────────────────────────


def _worker_peak_rss(stack: Stack) -> int:
    """The highest resident size any worker process has had (VmHWM), in bytes."""
    supervisor = psutil.Process(int(stack.state["pid"]))
    peaks = []
    for process in supervisor.children(recursive=True):
        if "actors.pool" in process.cmdline():
            status = Path(f"/proc/{process.pid}/status").read_text()
            peaks.append(int(next(line.split()[1] for line in status.splitlines()
                                  if line.startswith("VmHWM"))) * 1024)
    return max(peaks)


def test_a_one_gib_response_leaves_the_worker_memory_bounded(secure_stack: Stack,
                                                             downstream: Downstream) -> None:
    before = _worker_peak_rss(secure_stack)
    task_id = _enqueue(secure_stack, {"steps": [{"action": "http", "params": {
        "url": f"{downstream.url}/bytes/{GIB}", "timeout_s": 300}}], "timeout_s": 300})
    task = _wait(secure_stack, task_id, timeout=300)
    assert task["status"] == "done", task["error"]
    report = next(a for a in task["artifacts"] if a["kind"] == "report")
    body = json.loads(_objects(secure_stack, {"artifacts": [report]})[0])
    assert body["response"]["body_size"] == GIB and body["response"]["body_truncated"] is True
    growth = _worker_peak_rss(secure_stack) - before
    assert growth < 128 * 1024 ** 2, f"worker peak RSS grew by {growth / 1024 ** 2:.0f} MiB"


def test_a_dripping_response_is_cut_by_the_task_timeout_never_done(secure_stack: Stack,
                                                                   downstream: Downstream) -> None:
    task_id = _enqueue(secure_stack, {"max_attempts": 1, "timeout_s": 3, "steps": [
        {"action": "http", "params": {"url": f"{downstream.url}/drip/100000/0.5",
                                      "timeout_s": 600}}]})
    task = _wait(secure_stack, task_id, timeout=60)
    assert task["status"] == "failed" and "timeout" in task["error"]


def test_a_cancel_interrupts_a_call_in_flight(secure_stack: Stack, downstream: Downstream) -> None:
    task_id = _enqueue(secure_stack, {"max_attempts": 1, "steps": [
        {"action": "http", "params": {"url": f"{downstream.url}/drip/100001/0.5",
                                      "timeout_s": 600}}]})
    wait_until(lambda: downstream.received("/drip/100001/0.5"), timeout=60,
               what="the drip request to arrive downstream")
    assert secure_stack.post(f"/tasks/{task_id}/cancel", headers=OPERATE).status_code == 202
    task = _wait(secure_stack, task_id, timeout=60)
    assert task["status"] == "cancelled"
    assert [job["status"] for job in task["jobs"]] == ["cancelled"]
    assert "task_done" not in [event["event"] for event in task["events"]]
