"""``jct up`` as a real subprocess, the way ``make run`` starts it, in its own JCT_HOME."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import requests

from harness.wait import wait_until

JCT = str(Path(sys.executable).parent / "jct")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Stack:
    home: Path
    process: subprocess.Popen[bytes]
    state: dict[str, Any] = field(default_factory=dict)

    @property
    def api_url(self) -> str:
        return str(self.state["api_url"])

    @property
    def database_url(self) -> str:
        return str(self.state["database_url"])

    @property
    def log_file(self) -> Path:
        return Path(self.state["log_file"])

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.database_url) as conn:
            return conn.execute(sql, params).fetchall()

    def log_lines(self, trace_id: str | None = None) -> list[dict[str, Any]]:
        lines = []
        for raw in self.log_file.read_text(encoding="utf-8").splitlines():
            record = json.loads(raw)
            if trace_id is None or record.get("trace_id") == trace_id:
                lines.append(record)
        return lines

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return requests.get(self.api_url + path, timeout=30, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return requests.post(self.api_url + path, timeout=30, **kwargs)

    def wait_status(self, task_id: str, statuses: tuple[str, ...] = ("done", "failed", "cancelled"),
                    timeout: float = 60) -> dict[str, Any]:
        def probe() -> dict[str, Any] | None:
            task = self.get(f"/tasks/{task_id}").json()
            return task if task.get("status") in statuses else None

        return wait_until(probe, timeout=timeout, interval=0.2, what=f"task {task_id} in {statuses}")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


# Quicker than production defaults, so e2e tests wait less; any of them may be overridden.
# The tests' downstream servers listen on 127.0.0.1, which '*' no longer covers (loopback).
E2E_DEFAULTS = {"JCT_WORKERS": "2", "JCT_DISPATCH_INTERVAL_S": "1", "JCT_RETRY_BACKOFF_S": "0.2",
                "JCT_HTTP_ALLOWED_HOSTS": "127.0.0.1"}


def start_stack(home: Path, **env_overrides: str) -> Stack:
    """Start ``jct up`` with embedded defaults (unless overridden) and wait for /healthz."""
    home.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("JCT_")}
    env.update(E2E_DEFAULTS)
    env.update(JCT_HOME=str(home), JCT_PORT=str(free_port()))
    env.update(env_overrides)
    with (home / "jct-up.out").open("wb") as output:  # the child keeps its own descriptor
        process = subprocess.Popen([JCT, "up"], env=env, stdout=output, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL)
    stack = Stack(home=home, process=process)
    try:
        wait_until(lambda: _serving(stack), timeout=90, interval=0.2, what="jct up to serve /healthz")
    except BaseException:
        stack.stop()
        raise
    return stack


def _serving(stack: Stack) -> bool:
    if stack.process.poll() is not None:
        raise AssertionError(f"jct up exited with {stack.process.returncode}; "
                             f"see {stack.home / 'jct-up.out'}")
    run_file = stack.home / "run.json"
    if not run_file.exists():
        return False
    stack.state = json.loads(run_file.read_text())
    try:
        return requests.get(stack.api_url + "/healthz", timeout=2).status_code == 200
    except requests.RequestException:
        return False
