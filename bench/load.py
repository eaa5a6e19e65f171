"""Load shapes: a closed loop (each client sends its next request when the previous one is
answered: throughput) and an open loop (requests at scheduled times whatever the answers:
latency under a steady load, each task stamped with its scheduled time so a client that falls
behind shows up as latency instead of hiding it)."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from bench.stats import Rate

# One client's operation: sends one request, returns how many tasks it enqueued.
Operation = Callable[[], int]


def closed_loop(make_operation: Callable[[], Operation], *, clients: int, seconds: float,
                max_tasks: int | None = None) -> Rate:
    """``clients`` threads, each repeating its own operation until ``seconds`` have passed or
    ``max_tasks`` tasks were enqueued in all. Any error stops the run and is raised."""
    operations = [make_operation() for _ in range(clients)]
    lock = threading.Lock()
    done = [0]
    errors: list[BaseException] = []
    stop = threading.Event()
    barrier = threading.Barrier(clients + 1)

    def client(operation: Operation) -> None:
        barrier.wait()
        try:
            while not stop.is_set() and time.monotonic() < deadline:
                count = operation()
                with lock:
                    done[0] += count
                    if max_tasks is not None and done[0] >= max_tasks:
                        stop.set()
        except BaseException as exc:  # reported after the join
            errors.append(exc)
            stop.set()

    threads = [threading.Thread(target=client, args=(op,), daemon=True) for op in operations]
    for thread in threads:
        thread.start()
    started = time.monotonic()
    deadline = started + seconds
    barrier.wait()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    if errors:
        raise errors[0]
    return Rate(count=done[0], seconds=elapsed)


@dataclass(frozen=True)
class OpenLoopRun:
    sent: int
    rate: float
    late_over_10ms: int  # sends that left more than 10 ms after their scheduled time
    max_late_ms: float


def open_loop(make_send: Callable[[], Callable[[float], None]], *, rate: float, count: int,
              senders: int) -> OpenLoopRun:
    """Send ``count`` tasks at ``rate`` per second from ``senders`` threads. ``send(sent_at)``
    gets the task's scheduled time (epoch seconds), which the task carries as its send time."""
    schedule: queue.Queue[tuple[float, float] | None] = queue.Queue()
    wall0, mono0 = time.time() + 0.05, time.monotonic() + 0.05
    for i in range(count):
        schedule.put((mono0 + i / rate, wall0 + i / rate))
    for _ in range(senders):
        schedule.put(None)
    late: list[float] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def sender(send: Callable[[float], None]) -> None:
        while (item := schedule.get()) is not None:
            at, wall = item
            pause = at - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            lateness = time.monotonic() - at
            try:
                send(wall)
            except BaseException as exc:
                errors.append(exc)
                return
            with lock:
                late.append(lateness)

    threads = [threading.Thread(target=sender, args=(make_send(),), daemon=True)
               for _ in range(senders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return OpenLoopRun(sent=len(late), rate=rate, late_over_10ms=sum(1 for x in late if x > 0.01),
                       max_late_ms=round(max(late, default=0.0) * 1000, 1))
