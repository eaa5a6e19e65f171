"""The soak drill: enqueue N tasks, kill -9 a dramatiq worker process every S seconds, wait for
every task to end, and count.

    python -m drills.soak --tasks 20000 --kill-every 5

prints exactly one summary line on stdout

    tasks=N done=D failed=F lost=L duplicated=X elapsed_s=T

where ``lost`` counts accepted tasks not in a terminal state at the deadline and ``duplicated``
tasks with more than one ``done`` attempt; it exits 0 only when lost=0, duplicated=0 and done=N.
Progress and the kill log go to stderr. ``--max-kills`` stops killing after that many kills.

The stack runs on the embedded defaults (PostgreSQL, its broker, rclone S3) with a short lease
and dispatch interval (``SOAK_ENV``). If ``jct up`` stops during the soak, the drill starts its
database alone to count what was left.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import psycopg
import requests

from drills.postgres import EmbeddedPostgres
from drills.rabbitmq import delete_queue
from drills.stack import start_drill_stack, worker_processes
from harness.stack import Stack

BATCH = 250  # POST /enqueue/batch takes up to 1000; smaller batches keep each request short
SOAK_ENV = {"JCT_LEASE_S": "3", "JCT_DISPATCH_INTERVAL_S": "0.5", "JCT_DISPATCH_STALE_S": "10",
            "JCT_SHUTDOWN_GRACE_S": "1", "JCT_RETRY_BACKOFF_S": "0.2"}


def soak_spec(index: int) -> dict[str, object]:
    """A short task. Attempts to spare: a kill costs the attempts in flight on the killed worker
    (and the graceful give-back of its siblings), never the task."""
    return {"name": f"soak-{index}", "max_attempts": 10,
            "steps": [{"action": "echo", "params": {"message": f"soak {index}"}}]}


@dataclass
class SoakResult:
    tasks: int
    done: int
    failed: int
    lost: int
    duplicated: int
    elapsed_s: float
    kills: list[Kill] = field(default_factory=list)
    recovery: Recovery | None = None

    @property
    def ok(self) -> bool:
        return self.lost == 0 and self.duplicated == 0 and self.done == self.tasks

    def line(self) -> str:
        return (f"tasks={self.tasks} done={self.done} failed={self.failed} lost={self.lost} "
                f"duplicated={self.duplicated} elapsed_s={self.elapsed_s:.1f}")


@dataclass(frozen=True)
class Kill:
    pid: int
    at: float  # wall-clock epoch seconds, the clock the database's timestamps use here


@dataclass(frozen=True)
class Recovery:
    """For every attempt a kill cut short: seconds from the kill to its task's next claim."""

    cut: int
    seconds: list[float]

    @property
    def never(self) -> int:
        return self.cut - len(self.seconds)

    def quantile(self, q: float) -> float:
        ordered = sorted(self.seconds)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")

    def line(self) -> str:
        if not self.seconds:
            return f"recovery cut={self.cut} reclaimed=0"
        return (f"recovery cut={self.cut} reclaimed={len(self.seconds)} "
                f"p50_s={self.quantile(0.5):.2f} p99_s={self.quantile(0.99):.2f} "
                f"max_s={max(self.seconds):.2f}")


_CUT = """
SELECT j.task_id, (SELECT EXTRACT(EPOCH FROM min(n.started_at)) FROM jobs n
                    WHERE n.task_id = j.task_id AND n.started_at > j.started_at)
  FROM jobs j
 WHERE j.worker LIKE %s AND j.started_at <= to_timestamp(%s)
   AND (j.finished_at IS NULL OR j.finished_at > to_timestamp(%s))
   AND j.status IN ('lost', 'running')
"""


def measure_recovery(stack: Stack, kills: list[Kill]) -> Recovery:
    """Attempts running on a killed process when it was killed, and how long after the kill
    each one's task was claimed again (by any worker)."""
    cut, seconds = 0, []
    for kill in kills:
        for _task, next_claim in stack.query(_CUT, f"%:{kill.pid}", kill.at, kill.at):
            cut += 1
            if next_claim is not None:
                seconds.append(float(next_claim) - kill.at)
    return Recovery(cut=cut, seconds=seconds)


class Killer(threading.Thread):
    """Every ``every_s`` seconds, SIGKILL one dramatiq worker process that has been up a while
    (dramatiq then stops the others and exits; ``jct up`` restarts it), at most ``max_kills``
    times."""

    def __init__(self, stack: Stack, every_s: float, log: Callable[[str], None],
                 max_kills: int | None = None) -> None:
        super().__init__(name="soak-killer", daemon=True)
        self.stack, self.every_s, self.log, self.max_kills = stack, every_s, log, max_kills
        self.stopping = threading.Event()
        self.killed: list[Kill] = []

    def run(self) -> None:
        while not self.stopping.wait(self.every_s):
            if self.max_kills is not None and len(self.killed) >= self.max_kills:
                return
            victim = self._victim()
            if victim is None:
                self.log("no worker process up to kill (restarting?)")
                continue
            try:
                at = time.time()
                victim.send_signal(signal.SIGKILL)
            except psutil.Error:
                continue
            self.killed.append(Kill(victim.pid, at))
            self.log(f"kill -9 worker process {victim.pid} (#{len(self.killed)})")

    def _victim(self) -> psutil.Process | None:
        """A worker process up for at least a second; waits (bounded) for a restart."""
        deadline = time.monotonic() + max(10.0, self.every_s)
        while time.monotonic() < deadline and not self.stopping.is_set():
            candidates = worker_processes(self.stack, min_age_s=1.0)
            if candidates:
                return random.choice(candidates)
            self.stopping.wait(0.2)
        return None


class Progress:
    """Notices when the count of ended tasks has not moved for ``stall_s`` seconds."""

    def __init__(self, stall_s: float | None) -> None:
        self.stall_s, self.last, self.since = stall_s, -1, time.monotonic()

    def stalled(self, ended: int) -> bool:
        if ended != self.last:
            self.last, self.since = ended, time.monotonic()
        return self.stall_s is not None and time.monotonic() - self.since > self.stall_s


@contextmanager
def background_load(processes: int) -> Iterator[None]:
    """``processes`` busy loops beside the drill (a busy machine), stopped after it."""
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
            for _ in range(processes)]
    try:
        yield
    finally:
        for process in busy:
            process.kill()
            process.wait()


def rabbitmq_env() -> dict[str, str]:
    """Settings for a soak on RabbitMQ: this machine's server, a queue of the drill's own."""
    url = os.environ.get("JCT_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
    return {"JCT_BROKER_URL": url, "JCT_QUEUE": f"jct_soak_{uuid.uuid4().hex[:8]}"}


def enqueue_all(stack: Stack, tasks: int, log: Callable[[str], None]) -> list[str]:
    """POST /enqueue/batch in batches; returns the ids accepted (202). Stops at the first batch
    not accepted: the summary then shows fewer than N tasks done."""
    ids: list[str] = []
    for start in range(0, tasks, BATCH):
        specs = [soak_spec(i) for i in range(start, min(tasks, start + BATCH))]
        try:
            response = stack.post("/enqueue/batch", json={"tasks": specs})
        except requests.RequestException as exc:
            log(f"batch at {start} not answered ({exc}); {len(ids)} of {tasks} tasks accepted")
            break
        if response.status_code != 202:
            log(f"batch at {start} answered {response.status_code}: {response.text[:200]}; "
                f"{len(ids)} of {tasks} tasks accepted")
            break
        ids.extend(item["task_id"] for item in response.json()["tasks"])
    return ids


_COUNTS = """
SELECT count(*) FILTER (WHERE t.status = 'done'),
       count(*) FILTER (WHERE t.status = 'failed'),
       count(*) FILTER (WHERE t.status NOT IN ('done', 'failed', 'cancelled')),
       count(*) FILTER (WHERE (SELECT count(*) FROM jobs j WHERE j.task_id = t.id
                                 AND j.status = 'done') > 1)
  FROM tasks t WHERE t.id = ANY(%s::uuid[])
"""


def count(stack: Stack, ids: list[str]) -> tuple[int, int, int, int]:
    """(done, failed, not terminal, done more than once) among ``ids``."""
    row = stack.query(_COUNTS, ids)[0]
    return int(row[0]), int(row[1]), int(row[2]), int(row[3])


def run_soak(stack: Stack, *, tasks: int, kill_every_s: float, timeout_s: float,
             max_kills: int | None = None, min_kills: int = 0, stall_s: float | None = None,
             log: Callable[[str], None] = lambda _: None) -> SoakResult:
    """Kill workers while ``tasks`` tasks are enqueued and run; stop killing once every task
    ended and at least ``min_kills`` kills were made, then count.

    It gives up at ``timeout_s``, or, with ``stall_s``, as soon as no task has ended for that
    long: a slow machine makes the drill slower, only a real stall ends it early."""
    started = time.monotonic()
    progress = Progress(stall_s)
    killer = Killer(stack, kill_every_s, log, max_kills)
    killer.start()
    try:
        ids = enqueue_all(stack, tasks, log)
        log(f"{len(ids)} tasks accepted in {time.monotonic() - started:.1f}s")
        deadline = started + timeout_s
        while time.monotonic() < deadline and stack.process.poll() is None:
            try:
                done, failed, remaining, _ = count(stack, ids)
            except psycopg.OperationalError as exc:  # the stack is going down with its database
                log(f"database unreachable: {str(exc).strip()[:120]}")
                time.sleep(1.0)
                continue
            log(f"done={done} failed={failed} remaining={remaining} kills={len(killer.killed)}")
            if remaining == 0 and (len(killer.killed) >= min_kills or not killer.is_alive()):
                break
            if progress.stalled(done + failed):
                log(f"no task ended for {stall_s:.0f}s: stalled")
                break
            time.sleep(1.0)
    finally:
        killer.stopping.set()
        killer.join(30)
    elapsed = time.monotonic() - started
    if stack.process.poll() is not None:
        log(f"jct up exited with {stack.process.returncode}; see {stack.home / 'jct-up.out'}")
    done, failed, lost, duplicated = _final_count(stack, ids)
    recovery = measure_recovery(stack, killer.killed) if stack.process.poll() is None else None
    return SoakResult(tasks=tasks, done=done, failed=failed, lost=lost, duplicated=duplicated,
                      elapsed_s=elapsed, kills=list(killer.killed), recovery=recovery)


def _final_count(stack: Stack, ids: list[str]) -> tuple[int, int, int, int]:
    """Count on the running stack; if it stopped (its embedded database with it), let it finish
    stopping and start the database alone to count what it left."""
    if stack.process.poll() is None:
        try:
            return count(stack, ids)
        except psycopg.OperationalError:
            pass
    stack.process.wait(120)
    server = EmbeddedPostgres.of(stack.home, stack.database_url)
    if server.running():
        return count(stack, ids)
    server.start()
    try:
        return count(stack, ids)
    finally:
        server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m drills.soak", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=2000, help="how many tasks (default 2000)")
    parser.add_argument("--kill-every", type=float, default=5.0, metavar="S",
                        help="seconds between two kill -9 of a worker process (default 5)")
    parser.add_argument("--max-kills", type=int, default=None, metavar="N",
                        help="stop killing after N kills (default: kill until every task ended)")
    parser.add_argument("--timeout", type=float, default=None, metavar="S",
                        help="give up waiting after S seconds (default 120 + 0.1 s per task)")
    parser.add_argument("--broker", choices=("postgres", "rabbitmq"), default="postgres",
                        help="the PostgreSQL broker (default) or RabbitMQ at "
                             "JCT_TEST_RABBITMQ_URL (default amqp://guest:guest@127.0.0.1:5672/%%2F)")
    parser.add_argument("--background-load", type=int, default=0, metavar="N",
                        help="run N busy loops beside the drill (a busy machine)")
    parser.add_argument("--home", type=Path, default=None,
                        help="JCT_HOME of the drill's stack (default: a new temporary directory)")
    args = parser.parse_args(argv)
    if args.tasks < 1 or args.kill_every <= 0:
        parser.error("--tasks must be 1 or more and --kill-every greater than 0")

    def log(message: str) -> None:
        print(f"[soak] {message}", file=sys.stderr, flush=True)

    home = args.home or Path(tempfile.mkdtemp(prefix="jct-soak-")) / "home"
    log(f"starting jct up in {home}")
    broker_env = rabbitmq_env() if args.broker == "rabbitmq" else {}
    with background_load(args.background_load):
        stack = start_drill_stack(home, **SOAK_ENV, **broker_env)
        try:
            result = run_soak(stack, tasks=args.tasks, kill_every_s=args.kill_every,
                              timeout_s=args.timeout or 120 + 0.1 * args.tasks,
                              max_kills=args.max_kills, log=log)
        finally:
            stack.stop()
            if broker_env:
                delete_queue(broker_env["JCT_BROKER_URL"], broker_env["JCT_QUEUE"])
    log(f"{len(result.kills)} worker processes killed; logs in {home / 'logs'}")
    print(result.line(), flush=True)
    if result.recovery is not None:
        print(result.recovery.line(), flush=True)
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
