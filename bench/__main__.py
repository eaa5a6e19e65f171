"""``make bench``: start the system as ``make run`` does, measure, print ratios.

Every figure is a ratio against a baseline taken in the same run on the same machine, so the
numbers compare across machines and runs better than raw seconds do:

- ``enqueue_vs_healthz``: median latency of ``POST /enqueue`` over ``GET /healthz`` (the cost of
  validating, one transaction and a broker send, relative to a request that only pings the DB);
- ``batch_vs_single``: per-task time of ``POST /enqueue/batch`` (100 a request) over single enqueue;
- ``e2e_vs_raw_insert``: tasks/s run end to end (accepted → done, echo step, log blob in S3)
  over rows/s of a bare INSERT of the same task rows (the floor the database sets);
- ``worker_rss_growth``: worker processes' RSS after the load over RSS at idle (leak watch).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import psutil
import psycopg
import requests

from harness.stack import Stack, start_stack
from harness.wait import wait_until

SPEC = {"steps": [{"action": "echo", "params": {"message": "bench"}}]}


def _median_ms(session: requests.Session, method: str, url: str, count: int, **kw: Any) -> float:
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        response = session.request(method, url, timeout=30, **kw)
        samples.append((time.perf_counter() - started) * 1000)
        response.raise_for_status()
    return statistics.median(samples)


def _worker_rss(stack: Stack) -> int:
    supervisor = psutil.Process(stack.state["pid"])
    workers = [p for p in supervisor.children(recursive=True)
               if "actors.pool" in " ".join(p.cmdline())]
    return sum(p.memory_info().rss for p in workers)


def _wait_all_done(stack: Stack, count: int, since: str, timeout: float) -> None:
    def done() -> bool:
        rows = stack.query("SELECT count(*) FROM tasks WHERE status IN ('done', 'failed')"
                           " AND created_at >= %s", since)
        return rows[0][0] >= count

    wait_until(done, timeout=timeout, interval=0.25, what=f"{count} tasks done")


def _raw_insert_rate(stack: Stack, count: int) -> float:
    rows = [(str(uuid.uuid4()), str(uuid.uuid4()), json.dumps(SPEC)) for _ in range(count)]
    with psycopg.connect(stack.database_url) as conn:
        conn.execute("CREATE TEMP TABLE bench_tasks (LIKE tasks INCLUDING DEFAULTS)")
        started = time.perf_counter()
        for task_id, trace_id, spec in rows:
            with conn.transaction():
                conn.execute("INSERT INTO bench_tasks (id, trace_id, spec, status) VALUES"
                             " (%s, %s, %s, 'queued')", (task_id, trace_id, spec))
        return count / (time.perf_counter() - started)


def run(requests_count: int, tasks: int) -> dict[str, Any]:
    home = Path(tempfile.mkdtemp(prefix="jct-bench-"))
    stack = start_stack(home / "home")
    try:
        session = requests.Session()
        healthz = _median_ms(session, "GET", stack.api_url + "/healthz", requests_count)
        enqueue = _median_ms(session, "POST", stack.api_url + "/enqueue", requests_count, json=SPEC)
        started = time.perf_counter()
        for _ in range(max(1, requests_count // 100)):
            session.post(stack.api_url + "/enqueue/batch", json={"tasks": [SPEC] * 100},
                         timeout=60).raise_for_status()
        batch_per_task = (time.perf_counter() - started) * 1000 / (max(1, requests_count // 100) * 100)
        wait_until(lambda: stack.query("SELECT count(*) FROM tasks WHERE status IN ('queued', 'running')")
                   == [(0,)], timeout=600, interval=0.5, what="the warm-up tasks to finish")
        idle_rss = _worker_rss(stack)
        since = stack.query("SELECT now()")[0][0].isoformat()
        started = time.perf_counter()
        for _ in range(tasks // 100):
            session.post(stack.api_url + "/enqueue/batch", json={"tasks": [SPEC] * 100},
                         timeout=60).raise_for_status()
        _wait_all_done(stack, tasks // 100 * 100, since, timeout=1200)
        e2e_rate = tasks // 100 * 100 / (time.perf_counter() - started)
        loaded_rss = _worker_rss(stack)
        raw_rate = _raw_insert_rate(stack, tasks)
    finally:
        stack.stop()
    return {
        "enqueue_vs_healthz": {"ratio": round(enqueue / healthz, 2), "enqueue_p50_ms": round(enqueue, 2),
                               "healthz_p50_ms": round(healthz, 2)},
        "batch_vs_single": {"ratio": round(batch_per_task / enqueue, 3),
                            "batch_per_task_ms": round(batch_per_task, 3)},
        "e2e_vs_raw_insert": {"ratio": round(e2e_rate / raw_rate, 4), "e2e_tasks_per_s": round(e2e_rate, 1),
                              "raw_insert_rows_per_s": round(raw_rate, 1)},
        "worker_rss_growth": {"ratio": round(loaded_rss / idle_rss, 3), "idle_mib": idle_rss >> 20,
                              "loaded_mib": loaded_rss >> 20},
        "params": {"requests": requests_count, "tasks": tasks},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--tasks", type=int, default=1000)
    args = parser.parse_args(argv)
    results = run(args.requests, args.tasks)
    out = Path(__file__).resolve().parent / "results"
    out.mkdir(exist_ok=True)
    (out / "latest.json").write_text(json.dumps(results, indent=2))
    for name, figures in results.items():
        if name != "params":
            detail = ", ".join(f"{k}={v}" for k, v in figures.items() if k != "ratio")
            print(f"{name:<20} ratio={figures['ratio']:<8} {detail}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
