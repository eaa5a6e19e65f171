"""``GET /metrics``: Prometheus text from ``prometheus_client``. The counters and histograms of
every API and worker process of ``jct up`` are added up from their shared multiprocess
directory; the database's gauges (queued, running, oldest due, expired leases, pending uploads)
are read at scrape time."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import requests
from prometheus_client.parser import text_string_to_metric_families

from harness.stack import Stack, free_port
from harness.wait import wait_until
from observability import multiprocess

ROOT = Path(__file__).resolve().parents[2]

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
GAUGES = ("jct_tasks", "jct_oldest_queued_task_age_seconds", "jct_running_jobs",
          "jct_expired_leases", "jct_pending_uploads")
ECHO = {"name": "metrics-ok", "steps": [{"action": "echo", "params": {"message": "m"}}]}
FLAKY = {"name": "metrics-flaky", "max_attempts": 2,
         "steps": [{"action": "fail", "params": {"message": "drill", "retryable": True}}]}


def _scrape(stack: Stack) -> Samples:
    response = stack.get("/metrics")
    assert response.status_code == 200
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(response.text) for s in family.samples}


def _moved(before: Samples, after: Samples, name: str, **labels: str) -> float:
    """How far the samples called ``name`` whose labels include ``labels`` moved, summed."""
    def total(samples: Samples) -> float:
        return sum(value for (sample, pairs), value in samples.items()
                   if sample == name and set(labels.items()) <= set(pairs))

    return total(after) - total(before)


def _quiet(stack: Stack) -> bool:
    """No task of an earlier test is still queued or running (its figures would move too)."""
    (row,) = stack.query("SELECT count(*) FROM tasks WHERE status IN ('queued', 'running')")
    return row[0] == 0


def _claimed_by(stack: Stack, task_ids: list[str]) -> set[str]:
    return {row[0] for row in stack.query(
        "SELECT DISTINCT worker FROM jobs WHERE task_id = ANY(%s::uuid[])", task_ids)}


def _api_pids(stack: Stack, trace_ids: set[str]) -> set[int]:
    return {line["pid"] for line in stack.log_lines() if line.get("event") == "http_access"
            and line.get("trace_id") in trace_ids and line.get("path") == "/enqueue"}


def test_metrics_is_prometheus_text_with_help_and_type(postgres_stack: Stack) -> None:
    """The body parses with Prometheus' own parser; every family has HELP; the database's
    gauges are there and never negative."""
    response = postgres_stack.get("/metrics")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert response.headers["X-Trace-Id"]
    families = {family.name: family for family in text_string_to_metric_families(response.text)}
    assert set(GAUGES) <= set(families)
    assert {"jct_tasks_enqueued", "jct_tasks_finished", "jct_attempts", "jct_dispatches",
            "jct_s3_uploads", "jct_attempts_rescued", "jct_task_queue_wait_seconds",
            "jct_task_run_seconds", "jct_http_request_seconds"} <= set(families)
    for family in families.values():
        assert family.documentation, family.name
    for name in GAUGES:
        assert families[name].type == "gauge", name
        assert all(sample.value >= 0 for sample in families[name].samples), name


def test_a_workload_moves_the_counters_by_what_it_did(postgres_stack: Stack) -> None:
    """Tasks sent in rounds until at least two API processes answered and two worker processes
    ran them; the scrape then shows exactly what was done, added up across those processes."""
    stack = postgres_stack
    wait_until(lambda: _quiet(stack), timeout=60, interval=0.2, what="earlier tasks to settle")
    before = _scrape(stack)

    echo_ids: list[str] = []
    trace_ids: set[str] = set()
    for _round in range(10):
        for _ in range(4):  # a new connection each: gunicorn's workers take turns to accept
            body = stack.post("/enqueue", json=ECHO).json()
            echo_ids.append(body["task_id"])
            trace_ids.add(body["trace_id"])
        for task_id in echo_ids[-4:]:
            stack.wait_status(task_id)
        if len(_api_pids(stack, trace_ids)) >= 2 and len(_claimed_by(stack, echo_ids)) >= 2:
            break
    batch = stack.post("/enqueue/batch", json={"tasks": [ECHO, ECHO]}).json()
    flaky = stack.post("/enqueue", json=FLAKY).json()
    for task_id in [t["task_id"] for t in batch["tasks"]] + [flaky["task_id"]]:
        stack.wait_status(task_id)
    assert len(_api_pids(stack, trace_ids)) >= 2, "the enqueues were answered by one API process"
    assert len(_claimed_by(stack, echo_ids)) >= 2, "the tasks were run by one worker process"

    singles = len(echo_ids) + 1
    done = len(echo_ids) + 2
    expected: list[tuple[str, dict[str, str], float]] = [
        ("jct_tasks_enqueued_total", {}, singles + 2),
        ("jct_tasks_finished_total", {"status": "done"}, done),
        ("jct_tasks_finished_total", {"status": "failed"}, 1),
        ("jct_attempts_total", {"outcome": "done"}, done),
        ("jct_attempts_total", {"outcome": "retry"}, 1),
        ("jct_attempts_total", {"outcome": "failed"}, 1),
        ("jct_task_queue_wait_seconds_count", {}, done + 2),
        ("jct_task_run_seconds_count", {}, done + 2),
        ("jct_action_seconds_count", {"action": "echo", "outcome": "ok"}, done),
        ("jct_action_seconds_count", {"action": "fail", "outcome": "failed"}, 2),
        ("jct_dispatches_total", {"outcome": "outbox"}, singles + 2),  # the PostgreSQL broker
        ("jct_dispatches_total", {"outcome": "sent"}, 1),              # the retry's wake-up
        ("jct_s3_uploads_total", {"kind": "log", "outcome": "stored"}, done + 2),
        ("jct_http_request_seconds_count",
         {"route": "/enqueue", "method": "POST", "status": "202"}, singles),
        ("jct_http_request_seconds_count",
         {"route": "/enqueue/batch", "method": "POST", "status": "202"}, 1),
    ]

    wrong: list[tuple[str, dict[str, str], float]] = []

    def settled() -> Samples | None:
        # An attempt's figures are recorded just after its row says done: wait for them.
        after = _scrape(stack)
        wrong[:] = [(name, labels, _moved(before, after, name, **labels))
                    for name, labels, want in expected if _moved(before, after, name, **labels) != want]
        return after if not wrong else None

    try:
        after = wait_until(settled, timeout=20, interval=0.2, what="the workload's figures")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; moved otherwise: {wrong}") from None
    assert _moved(before, after, "jct_task_queue_wait_seconds_sum") >= 0
    assert _moved(before, after, "jct_task_run_seconds_sum") > 0
    # Histograms are cumulative: the +Inf bucket holds every observation.
    assert _moved(before, after, "jct_task_run_seconds_bucket", le="+Inf") == done + 2

    shared = stack.home / "metrics" / f"up-{socket.gethostname()}"
    pids = {path.stem.rsplit("_", 1)[1] for path in shared.glob("*.db")}
    assert len(pids) >= 4, f"2 API and 2 worker processes write there: {sorted(pids)}"


def test_live_task_counts_match_the_database(postgres_stack: Stack) -> None:
    """``jct_tasks{status}`` covers the live statuses (queued, running), read from the
    database's partial indexes; final statuses are counted by ``jct_tasks_finished_total``."""
    postgres_stack.wait_status(postgres_stack.post("/enqueue", json=ECHO).json()["task_id"])

    def live() -> dict[str, int]:
        counts = {"queued": 0, "running": 0}
        counts.update({status: int(n) for status, n in postgres_stack.query(
            "SELECT status, count(*) FROM tasks WHERE status IN ('queued', 'running') "
            "GROUP BY status")})
        return counts

    def consistent() -> dict[str, int] | None:
        before = live()
        scraped = {dict(labels)["status"]: int(value)
                   for (name, labels), value in _scrape(postgres_stack).items() if name == "jct_tasks"}
        return scraped if before == live() == scraped else None

    counts = wait_until(consistent, timeout=30, interval=0.2, what="jct_tasks equal to the table")
    assert set(counts) == {"queued", "running"}


def _pool_env(stack: Stack, home: Path, port: int) -> dict[str, str]:
    """A worker pool on its own (as ``jct worker`` on another host), on the stack's services."""
    state = stack.state
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("JCT_") and k != multiprocess.ENV}
    env.update(JCT_HOME=str(home), JCT_DATABASE_URL=state["database_url"],
               JCT_S3_ENDPOINT=state["s3_endpoint"], JCT_S3_ACCESS_KEY=state["s3_access_key"],
               JCT_S3_SECRET_KEY=state["s3_secret_key"], JCT_S3_BUCKET=state["s3_bucket"],
               JCT_QUEUE=state["queue"], JCT_WORKERS="1", JCT_WORKER_METRICS_PORT=str(port))
    return env


def _pool_samples(url: str) -> Samples | None:
    try:
        response = requests.get(url, timeout=5)
    except requests.RequestException:
        return None
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(response.text) for s in family.samples}


def _done_attempts(samples: Samples | None) -> float:
    return (samples or {}).get(("jct_attempts_total", (("outcome", "done"),)), 0.0)


def test_a_worker_pool_on_its_own_serves_its_processes_metrics(postgres_stack: Stack,
                                                               tmp_path: Path) -> None:
    """``JCT_WORKER_METRICS_PORT``: the pool's own /metrics adds up its worker processes' files
    (no database gauges: those are the API's); a worker process killed and replaced leaves its
    counts in the sum."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    with (tmp_path / "pool.err").open("wb") as errors:  # the child keeps its own descriptor
        pool = subprocess.Popen([sys.executable, "-m", "actors.pool"], env=_pool_env(
            postgres_stack, tmp_path / "home", port), cwd=ROOT, stdout=subprocess.DEVNULL,
            stderr=errors)
    try:
        wait_until(lambda: _pool_samples(url), timeout=30, interval=0.2, what="the pool's /metrics")
        for _round in range(20):  # the stack's own workers take their share of the tasks
            for task_id in [postgres_stack.post("/enqueue", json=ECHO).json()["task_id"]
                            for _ in range(4)]:
                postgres_stack.wait_status(task_id)
            if _done_attempts(_pool_samples(url)) >= 1:
                break
        counted = wait_until(lambda: _done_attempts(_pool_samples(url)) or None, timeout=10,
                             interval=0.2, what="an attempt run by the pool")
        assert not {name for name, _ in _pool_samples(url) or {}} & set(GAUGES)

        ready = [line for line in _read_log(tmp_path / "home") if line.get("event") == "worker_ready"]
        os.kill(ready[-1]["pid"], signal.SIGKILL)
        wait_until(lambda: len([line for line in _read_log(tmp_path / "home")
                                if line.get("event") == "worker_ready"]) > len(ready),
                   timeout=30, interval=0.2, what="the killed worker process replaced")
        assert _done_attempts(_pool_samples(url)) == counted
    finally:
        pool.terminate()
        pool.wait(60)


def _read_log(home: Path) -> list[dict[str, Any]]:
    path = home / "logs" / "jct.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
