"""``python -m bench.slow_clients``: how the API's gunicorn answers ``/healthz`` while slow
clients hold connections open by dripping their request headers (one byte a second).

It starts the system as ``make run`` does (for the database), then, for each gunicorn
configuration, a separate gunicorn on the same settings (``-c gunicorn_conf.py`` with
command-line overrides), opens N dripping clients, and times sequential ``GET /healthz``
requests (each gives up after ``--probe-timeout`` s, counted as a failure). Prints one line per
(configuration, N): median and worst latency, and failures.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from harness.drippers import Drippers
from harness.stack import free_port, start_stack
from harness.wait import wait_until

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = {
    "sync-2": ["--worker-class", "sync", "--threads", "1"],
    "gthread-2x4": ["--worker-class", "gthread", "--threads", "4"],
    "gthread-2x16": ["--worker-class", "gthread", "--threads", "16"],
    "jct-2x16": [],  # gunicorn_conf.py as shipped: head-deadline gthread, JCT_API_THREADS
}


def start_gunicorn(env: dict[str, str], port: int, extra: list[str]) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "gunicorn_conf.py"),
               "--chdir", str(ROOT), "--bind", f"127.0.0.1:{port}", *extra]
    process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)

    def ready() -> bool:
        try:
            return requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    wait_until(ready, timeout=30, interval=0.2, what="gunicorn to serve /healthz")
    return process


def probe(port: int, count: int, timeout: float) -> tuple[list[float], int]:
    latencies, failures = [], 0
    for _ in range(count):
        started = time.perf_counter()
        try:
            requests.get(f"http://127.0.0.1:{port}/healthz", timeout=timeout).raise_for_status()
            latencies.append((time.perf_counter() - started) * 1000)
        except requests.RequestException:
            failures += 1
    return latencies, failures


def run(configs: list[str], client_counts: list[int], probes: int, probe_timeout: float) -> None:
    home = Path(tempfile.mkdtemp(prefix="jct-bench-slow-")) / "home"
    stack = start_stack(home)
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("JCT_")}
        env.update(JCT_HOME=str(home), JCT_DATABASE_URL=stack.database_url,
                   JCT_S3_ENDPOINT=stack.state["s3_endpoint"],
                   JCT_S3_ACCESS_KEY=stack.state["s3_access_key"],
                   JCT_S3_SECRET_KEY=stack.state["s3_secret_key"], JCT_API_WORKERS="2",
                   JCT_API_THREADS="16")
        for name in configs:
            for count in client_counts:
                port = free_port()
                server = start_gunicorn({**env, "JCT_PORT": str(port)}, port, CONFIGS[name])
                drippers = Drippers(("127.0.0.1", port), count)
                try:
                    time.sleep(1.5)  # the workers have taken the connections and read a byte
                    latencies, failures = probe(port, probes, probe_timeout)
                    held = drippers.held_open()
                finally:
                    drippers.close()
                    server.terminate()
                    server.wait(30)
                median = f"{statistics.median(latencies):8.1f}" if latencies else "       -"
                worst = f"{max(latencies):8.1f}" if latencies else "       -"
                print(f"{name:<14} slow={count:<3} healthz p50_ms={median} max_ms={worst} "
                      f"failed={failures}/{probes} (>{probe_timeout:.0f}s)  slow_held={held}",
                      flush=True)
    finally:
        stack.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.slow_clients")
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--clients", default="2,5,10,20,40")
    parser.add_argument("--probes", type=int, default=5)
    parser.add_argument("--probe-timeout", type=float, default=10.0)
    args = parser.parse_args(argv)
    run(args.configs.split(","), [int(n) for n in args.clients.split(",")], args.probes,
        args.probe_timeout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
