"""The ``command`` and ``checkout`` actions through the worker's attempt, on real bubblewrap,
PostgreSQL and S3: what a command leaves (four artifact kinds with their keys, metadata and
rows), a secret by reference that reaches the command and nothing else, exit codes mapped to
done / failed / retry, and cancel and timeout killing the whole tree. Isolation and limits are
the sandbox's own tests (the other files here)."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import tracing
from config import load_settings
from models.views import get_task
from runtime import Runtime
from services import operations
from services.attempt import run_task
from services.enqueue import enqueue
from storage.s3 import key_from_uri, metadata_value
from tests.integration.sandbox_runs.conftest import processes_with, still_running

SECRET = "s3cr3t-" + secrets.token_hex(8)


@pytest.fixture
def sources(shared_dir: Path) -> Path:
    """A checkout root holding ``app``: tag ``v1`` (a.txt = one) and ``main`` after it."""
    root = shared_dir / f"sources-{secrets.token_hex(4)}"
    repo = root / "app"
    repo.mkdir(parents=True)
    os.chmod(root, 0o755)
    for args in (["init", "-q", "-b", "main"], ["config", "user.email", "t@example.com"],
                 ["config", "user.name", "t"]):
        subprocess.run(["git", "-C", str(repo), *args], check=True)
    (repo / "a.txt").write_text("one\n")
    subprocess.run(["git", "-C", str(repo), "add", "."], check=True)
    subprocess.run(["git", "-C", str(repo), "commit", "-qm", "first"], check=True)
    subprocess.run(["git", "-C", str(repo), "tag", "v1"], check=True)
    subprocess.run(["chmod", "-R", "a+rX", str(root)], check=True)
    return root


@pytest.fixture
def crt(rt: Runtime, base_env: dict[str, str], shared_dir: Path, sources: Path,
        tmp_path: Path) -> Iterator[Runtime]:
    """A worker's runtime whose workspaces are under a directory the sandbox's uid can reach,
    that may check out from ``sources`` and resolves ``deploy_token`` from a secrets dir. It
    shares ``rt``'s log collector and secret registry (the log handlers' scrubber)."""
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "deploy_token").write_text(SECRET + "\n")
    settings = load_settings({**base_env, "JCT_SANDBOX_ROOT": str(shared_dir / "ws"),
                              "JCT_CHECKOUT_ROOTS": str(sources),
                              "JCT_SECRETS_DIR": str(tmp_path / "secrets"),
                              "JCT_LEASE_S": "3"})
    current = Runtime(settings, component="worker", attempt_logs=rt.attempt_logs,
                      secret_registry=rt.secret_registry)
    yield current
    current.close()
    assert not list((shared_dir / "ws").glob("*/*")), "a workspace outlived its attempt"


def _run(rt: Runtime, spec: dict[str, Any]) -> tuple[str, str, str | None]:
    trace_id = tracing.new_trace_id()
    with tracing.bound(trace_id=trace_id):
        task_id = enqueue(rt, spec, trace_id).task_id
    with tracing.bound(trace_id=trace_id, task_id=task_id):
        return trace_id, task_id, run_task(rt, task_id)


def _task(rt: Runtime, task_id: str) -> dict[str, Any]:
    with rt.db.connection():
        task = get_task(rt.db, task_id)
    assert task is not None
    return task


def _blob(rt: Runtime, artifact: dict[str, Any]) -> bytes:
    return b"".join(rt.store.stream(key_from_uri(artifact["uri"], rt.settings.s3_bucket)))


EDIT = """
set -e
echo "editing $JCT_TASK_ID"
echo "token is $TOKEN" >&2
echo edited > a.txt
echo new > b.txt
mkdir -p out && echo '{"ok": true}' > out/result.json && echo 'x' > out/skip.txt
printf '{"trace": "%s", "task": "%s", "traceparent": "%s", "token_sha256": "%s"}' \
  "$JCT_TRACE_ID" "$JCT_TASK_ID" "$TRACEPARENT" "$(printf %s "$TOKEN" | sha256sum | cut -d' ' -f1)" \
  > "$JCT_REPORT"
"""


def test_a_command_in_a_checkout_leaves_log_diff_report_and_files_and_no_secret(
        crt: Runtime, sources: Path) -> None:
    """A checkout at ``v1``, then a script that edits it, writes a file and a report: the step
    leaves its log (the result artifact), the diff against ``v1``, the report and the matching
    file under ``<trace>/<task>/<job>/step-1-…`` with trace metadata, and its row has its exit
    code and resource use. The secret passed by reference reached the command (the report has
    its hash) and is nowhere else: rows, artifacts, log lines, the API's task story."""
    spec = {"name": "edit", "max_attempts": 1, "steps": [
        {"action": "checkout", "params": {"url": str(sources / "app"), "ref": "v1"}},
        {"action": "command", "params": {
            "shell": EDIT, "workdir": "repo", "env": {"TOKEN": {"secret": "deploy_token"}},
            "artifacts": ["repo/out/*.json"]}}]}
    trace_id, task_id, status = _run(crt, spec)
    task = _task(crt, task_id)
    assert status == "done", task["error"]

    checkout, command = task["actions"]
    assert (checkout["action_name"], checkout["exit_code"]) == ("checkout", 0)
    assert command["exit_code"] == 0 and command["signal"] is None
    assert command["wall_s"] > 0 and command["cpu_s"] >= 0 and command["max_rss_bytes"] > 0
    assert "editing " + task_id in command["output_tail"]
    by_name = {a["name"]: a for a in task["artifacts"]}
    assert {name for name in by_name if name.startswith("step-1-")} == {
        "step-1-output.log", "step-1-diff-repo.patch", "step-1-report.json",
        "step-1-file-repo/out/result.json"}
    assert command["result_artifact_id"] == by_name["step-1-output.log"]["id"]
    assert checkout["result_artifact_id"] == by_name["step-0-checkout.log"]["id"]
    job_id = task["jobs"][0]["id"]
    kinds = {"step-1-output.log": "log", "step-1-diff-repo.patch": "diff",
             "step-1-report.json": "report", "step-1-file-repo/out/result.json": "file"}
    for name, kind in kinds.items():
        artifact = by_name[name]
        assert artifact["kind"] == kind and artifact["trace_id"] == trace_id
        key = key_from_uri(artifact["uri"], crt.settings.s3_bucket)
        assert key == f"{trace_id}/{task_id}/{job_id}/{name}"
        metadata = crt.store.head(key)["Metadata"]
        assert metadata_value(metadata, "trace-id") == trace_id
        assert metadata_value(metadata, "kind") == kind

    patch = _blob(crt, by_name["step-1-diff-repo.patch"]).decode()
    assert "-one" in patch and "+edited" in patch and "b/b.txt" in patch
    assert "out/skip.txt" in patch  # the diff has everything; files only what the globs name
    report = json.loads(_blob(crt, by_name["step-1-report.json"]))
    assert report["trace"] == trace_id and report["task"] == task_id
    assert report["traceparent"].startswith(f"00-{trace_id.replace('-', '')}-")
    assert report["token_sha256"] == hashlib.sha256(SECRET.encode()).hexdigest()
    assert json.loads(_blob(crt, by_name["step-1-file-repo/out/result.json"])) == {"ok": True}
    log = _blob(crt, by_name["step-1-output.log"]).decode()
    assert "token is ***" in log and f"editing {task_id}" in log

    worker_log = _blob(crt, by_name["worker.log.jsonl"]).decode()
    lines = [json.loads(line) for line in worker_log.splitlines()]
    output = [line for line in lines if line["event"] == "command_output"]
    assert {line["trace_id"] for line in output} == {trace_id}
    assert {"editing " + task_id, "token is ***"} <= {line["message"] for line in output}

    everywhere = [json.dumps(operations.task_story(crt, task_id)), worker_log,
                  crt.settings.log_file.read_text(),
                  *(_blob(crt, a).decode(errors="replace") for a in task["artifacts"])]
    with crt.db.connection():
        everywhere += [json.dumps(row, default=str) for table in (
            "tasks", "jobs", "action_invocations", "artifacts", "task_events")
            for row in crt.db.dicts(f"SELECT * FROM {table}")]
    assert not [text for text in everywhere if SECRET in text]


def test_exit_codes_map_to_done_failed_and_retry(crt: Runtime) -> None:
    """0 is done; another code fails the task at once with the code and the last stderr lines;
    a code declared retryable schedules another attempt."""
    def spec(code: int) -> dict[str, Any]:
        script = f"echo 'about to exit {code}' >&2; exit {code}"
        return {"max_attempts": 3, "steps": [{"action": "command", "params": {
            "argv": ["sh", "-c", script], "retryable_exit_codes": [75]}}]}

    assert _run(crt, spec(0))[2] == "done"
    _, failed_id, status = _run(crt, spec(3))
    failed = _task(crt, failed_id)
    assert status == "failed" and failed["attempts"] == 1
    assert failed["error"] == "step 0 (command): exit code 3\nabout to exit 3"
    assert failed["actions"][0]["exit_code"] == 3
    _, retried_id, status = _run(crt, spec(75))
    assert status == "queued"
    assert "retry_scheduled" in [e["event"] for e in _task(crt, retried_id)["events"]]


def test_a_nul_in_the_output_still_ends_with_its_rows(crt: Runtime) -> None:
    """PostgreSQL's text holds no NUL: a command that prints one (on stderr, which also goes
    into the failure's error text) ends failed with its rows written, the NUL shown as U+FFFD."""
    spec = {"steps": [{"action": "command", "params": {
        "argv": ["sh", "-c", "printf 'a\\000b\\n'; printf 'c\\000d\\n' >&2; exit 4"]}}]}
    _, task_id, status = _run(crt, spec)
    task = _task(crt, task_id)
    assert status == "failed"
    assert task["error"] == "step 0 (command): exit code 4\nc\ufffdd"
    assert task["actions"][0]["exit_code"] == 4
    assert "a\ufffdb" in task["actions"][0]["output_tail"]


TREE = ("python3 -c 'import time; time.sleep(300)' {m} & python3 -c 'import time; "
        "time.sleep(300)' {m} & echo started; wait")


def _wait_for(predicate: Any, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)


def test_timeout_and_cancel_kill_the_whole_tree(crt: Runtime) -> None:
    """A command whose children outlive it by design: its timeout fails the step and its
    output is kept; an operator's cancel stops it within the cancel poll. Either way no
    process of its tree is left."""
    marker = f"jct-tree-{secrets.token_hex(4)}"
    spec = {"max_attempts": 1, "steps": [{"action": "command", "params": {
        "shell": TREE.format(m=marker + "-t"), "timeout_s": 1.5}}]}
    _, task_id, status = _run(crt, spec)
    task = _task(crt, task_id)
    assert status == "failed" and "command timed out after 1.5s" in task["error"]
    assert task["actions"][0]["output_tail"] == "started"
    assert not still_running(processes_with(marker + "-t"))

    spec["steps"][0]["params"] = {"shell": TREE.format(m=marker + "-c")}
    trace_id = tracing.new_trace_id()
    task_id = enqueue(crt, spec, trace_id).task_id
    ended: list[str | None] = []

    def attempt() -> None:
        with tracing.bound(trace_id=trace_id, task_id=task_id):
            ended.append(run_task(crt, task_id))

    runner = threading.Thread(target=attempt)
    runner.start()
    # the shell (its script names the marker) and its two children
    _wait_for(lambda: len(still_running(processes_with(marker + "-c"))) >= 3)
    assert operations.cancel(crt, task_id, "test") == "running"
    runner.join(timeout=30)
    assert ended == ["cancelled"]
    assert not still_running(processes_with(marker + "-c"))
    assert _task(crt, task_id)["actions"][0]["output_tail"] == "started"


def test_jct_sandbox_none_runs_the_same_steps_unconfined(
        rt: Runtime, base_env: dict[str, str], shared_dir: Path, sources: Path) -> None:
    """``JCT_SANDBOX=none`` (asked for by name): the checkout and the command run on the host,
    with the same inputs and outputs (workspace, report, diff, exit code)."""
    settings = load_settings({**base_env, "JCT_SANDBOX": "none",
                              "JCT_SANDBOX_ROOT": str(shared_dir / "ws-none"),
                              "JCT_CHECKOUT_ROOTS": str(sources)})
    unconfined = Runtime(settings, component="worker", attempt_logs=rt.attempt_logs)
    try:
        spec = {"max_attempts": 1, "steps": [
            {"action": "checkout", "params": {"url": str(sources / "app"), "ref": "v1"}},
            {"action": "command", "params": {"shell": "echo two > a.txt; echo '[1]' > $JCT_REPORT",
                                             "workdir": "repo"}}]}
        _, task_id, status = _run(unconfined, spec)
        task = _task(unconfined, task_id)
        assert status == "done", task["error"]
        by_name = {a["name"]: a for a in task["artifacts"]}
        assert "+two" in _blob(unconfined, by_name["step-1-diff-repo.patch"]).decode()
        assert json.loads(_blob(unconfined, by_name["step-1-report.json"])) == [1]
        assert task["actions"][1]["exit_code"] == 0
    finally:
        unconfined.close()
    assert not list((shared_dir / "ws-none").glob("*/*"))
