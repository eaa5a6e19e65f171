"""Work for the drill, sent to the API host the way a client would: task specs, batches of
``POST /enqueue/batch``, and a steady stream of ``POST /enqueue`` that records every answer."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import requests

BATCH = 250  # POST /enqueue/batch takes up to 1000; smaller batches keep each request short


def echo_spec(tag: str, index: int, *, max_attempts: int = 5) -> dict[str, Any]:
    return {"name": f"{tag}-{index}", "max_attempts": max_attempts,
            "steps": [{"action": "echo", "params": {"message": f"{tag} {index}"}}]}


def sleep_spec(tag: str, index: int, seconds: float, *, max_attempts: int = 3) -> dict[str, Any]:
    return {"name": f"{tag}-{index}", "max_attempts": max_attempts,
            "steps": [{"action": "sleep", "params": {"seconds": seconds}}]}


def enqueue_batches(api_url: str, specs: list[dict[str, Any]]) -> list[str]:
    """Every spec accepted (202), in batches; the task ids. Raises on any other answer."""
    ids: list[str] = []
    for start in range(0, len(specs), BATCH):
        response = requests.post(f"{api_url}/enqueue/batch",
                                 json={"tasks": specs[start:start + BATCH]}, timeout=120)
        if response.status_code != 202:
            raise AssertionError(f"batch at {start} answered {response.status_code}: "
                                 f"{response.text[:300]}")
        ids.extend(item["task_id"] for item in response.json()["tasks"])
    return ids


@dataclass(frozen=True)
class Answer:
    sent_at: float  # epoch seconds
    status: int | None  # None: no HTTP answer (connection error, client timeout)
    took_s: float
    task_id: str | None
    error: str | None = None


class Enqueuer(threading.Thread):
    """``count`` tasks, one ``POST /enqueue`` at a time, ``interval_s`` apart."""

    def __init__(self, api_url: str, tag: str, count: int, interval_s: float) -> None:
        super().__init__(name=f"enqueuer-{tag}", daemon=True)
        self.api_url, self.tag, self.count, self.interval_s = api_url, tag, count, interval_s
        self.answers: list[Answer] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        for index in range(self.count):
            if self.stopping.is_set():
                return
            sent, started = time.time(), time.monotonic()
            try:
                response = requests.post(f"{self.api_url}/enqueue",
                                         json=echo_spec(self.tag, index), timeout=90)
                task_id = response.json().get("task_id") if response.status_code == 202 else None
                self.answers.append(Answer(sent, response.status_code,
                                           time.monotonic() - started, task_id))
            except requests.RequestException as exc:
                self.answers.append(Answer(sent, None, time.monotonic() - started, None,
                                           f"{type(exc).__name__}: {exc}"[:200]))
            self.stopping.wait(self.interval_s)

    def accepted(self) -> list[str]:
        return [a.task_id for a in self.answers if a.status == 202 and a.task_id]
