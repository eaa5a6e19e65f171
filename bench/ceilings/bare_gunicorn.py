"""``bare_gunicorn``: ``bare_app`` under JCT's gunicorn settings (``gunicorn_conf.py``: 2
threaded workers × 16 threads, timeout 60; JCT's worker class adds only a deadline on request
heads) and driven by the same client code and load shapes as JCT's single enqueue (1 client,
16 clients)."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import requests

from bench.context import ROOT, BenchContext
from bench.cpu import CpuMeter, tree_of
from bench.http_client import JsonPoster
from bench.load import Operation, closed_loop
from harness.stack import free_port
from harness.wait import wait_until

API_WORKERS = 2  # JCT_API_WORKERS' default
API_THREADS = 16  # JCT_API_THREADS' default


def measure_bare_gunicorn(ctx: BenchContext) -> dict[str, Any]:
    port = free_port()
    log = ctx.workdir / "bare-gunicorn.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--workers", str(API_WORKERS), "--worker-class", "gthread",
             "--threads", str(API_THREADS),
             "--timeout", "60", "--bind", f"127.0.0.1:{port}", "--chdir", str(ROOT),
             "bench.ceilings.bare_app:app"], stdout=out, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _serving(url), timeout=60, interval=0.2, what="bare gunicorn to serve")
        meter = CpuMeter({"api": tree_of(server.pid)})
        body = json.dumps({"steps": [{"action": "echo", "params": {"message": "bench"}}]}).encode()

        def make() -> Operation:
            poster = JsonPoster(url)

            def send() -> int:
                poster.post("/enqueue", body)
                return 1

            return send

        result: dict[str, Any] = {"settings": {"workers": API_WORKERS, "worker_class": "gthread",
                                               "threads": API_THREADS}}
        for key, clients in (("enqueue_1", 1), ("enqueue_16", ctx.plan.clients)):
            cpu0 = meter.snapshot()
            rate = closed_loop(make, clients=clients, seconds=ctx.plan.enqueue_seconds)
            cpu1 = meter.snapshot()
            result[key] = {**rate.as_dict(), "clients": clients,
                           "cpu_ms_per_task": CpuMeter.ms_per_task(cpu0, cpu1, rate.count)}
        return result
    finally:
        server.terminate()
        server.wait(30)


def _serving(url: str) -> bool:
    try:
        return requests.post(url + "/enqueue", json={}, timeout=2).status_code == 202
    except requests.RequestException:
        return False
