"""JCT measured as a black box: ``jct up`` (``harness.stack``) on the shared PostgreSQL, with the
PostgreSQL broker or RabbitMQ, driven through ``POST /enqueue`` and ``POST /enqueue/batch``,
observed through its processes (psutil) and its database (the observer role).

Workers are paused with SIGSTOP on the dramatiq process tree while the enqueue windows run and
the end-to-end backlog is filled, and resumed with SIGCONT: enqueue is measured alone, and the
burn-down runs from already-booted workers, as for every peer.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from bench.context import BenchContext
from bench.cpu import CpuMeter, Group, rss_bytes, signal_all, tree
from bench.http_client import JsonPoster
from bench.load import Operation, closed_loop, open_loop
from bench.rabbitmq import RabbitMQ
from bench.sql_accounting import Observer, SqlAccountant
from bench.stats import Rate, latency_of
from errors import BenchError
from harness.stack import Stack, start_stack

ECHO = [{"action": "echo", "params": {"message": "bench"}}]
# Production defaults, not the e2e tests' quicker ones (harness.stack.E2E_DEFAULTS).
SETTINGS = {"JCT_WORKERS": "2", "JCT_WORKER_THREADS": "4", "JCT_API_WORKERS": "2",
            "JCT_DISPATCH_INTERVAL_S": "5", "JCT_RETRY_BACKOFF_S": "2"}


def task_spec(phase: str, sent_at: float | None = None) -> dict[str, Any]:
    """An echo task labelled with its bench phase (and the client's send time)."""
    labels = {"bench_phase": phase}
    if sent_at is not None:
        labels["bench_sent_at"] = repr(sent_at)
    return {"steps": ECHO, "labels": labels}


class RunningJct:
    """One ``jct up`` and the bench's handles on it."""

    def __init__(self, stack: Stack, ctx: BenchContext, database: str, rabbitmq: bool) -> None:
        self.stack, self.ctx = stack, ctx
        self.observer = Observer(ctx.postgres, database)
        self.sql = SqlAccountant(ctx.postgres, database, self.observer)
        self.supervisor = psutil.Process(int(stack.state["pid"]))
        groups: dict[str, Group] = {
            "api": self._child_tree("gunicorn"), "worker": self._child_tree("actors.pool"),
            "s3": self._child_tree("rclone"), "supervisor": lambda: [self.supervisor],
            "postgres": ctx.postgres.processes}
        if rabbitmq:
            groups["rabbitmq"] = RabbitMQ.processes
        self.meter = CpuMeter(groups)

    def _child_tree(self, marker: str) -> Group:
        def group() -> list[psutil.Process]:
            for child in self.supervisor.children():
                try:
                    if marker in " ".join(child.cmdline()):
                        return tree(child)
                except psutil.NoSuchProcess:
                    continue
            return []

        return group

    def workers(self) -> list[psutil.Process]:
        return self.meter.groups["worker"]()

    def pause_workers(self) -> None:
        signal_all(self.workers(), signal.SIGSTOP)

    def resume_workers(self) -> None:
        signal_all(self.workers(), signal.SIGCONT)

    def outstanding(self) -> int:
        return int(self.observer.scalar(
            "SELECT count(*) FROM tasks WHERE status IN ('queued', 'running')"))

    def task_count(self) -> int:
        return int(self.observer.scalar("SELECT count(*) FROM tasks"))

    def wait_idle(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while (left := self.outstanding()) > 0:
            if time.monotonic() > deadline:
                raise BenchError(f"JCT still has {left} queued/running tasks after {timeout:.0f}s")
            time.sleep(0.5)

    def poster(self) -> JsonPoster:
        return JsonPoster(self.stack.api_url)

    def single_operation(self, phase: str) -> Callable[[], Operation]:
        body = json.dumps(task_spec(phase)).encode()

        def make() -> Operation:
            poster = self.poster()

            def send() -> int:
                poster.post("/enqueue", body)
                return 1

            return send

        return make

    def batch_operation(self, phase: str, size: int) -> Callable[[], Operation]:
        body = json.dumps({"tasks": [task_spec(phase)] * size}).encode()

        def make() -> Operation:
            poster = self.poster()

            def send() -> int:
                poster.post("/enqueue/batch", body)
                return size

            return send

        return make

    def enqueue_window(self, make: Callable[[], Operation], *, clients: int,
                       max_tasks: int) -> dict[str, Any]:
        """One enqueue window: throughput, CPU and SQL per task."""
        cpu0, sql0 = self.meter.snapshot(), self.sql.snapshot()
        rate = closed_loop(make, clients=clients, seconds=self.ctx.plan.enqueue_seconds,
                           max_tasks=max_tasks)
        cpu1, sql1 = self.meter.snapshot(), self.sql.snapshot()
        return {**rate.as_dict(), "clients": clients,
                "cpu_ms_per_task": _without(CpuMeter.ms_per_task(cpu0, cpu1, rate.count), "worker"),
                "sql_per_task": SqlAccountant.per_task(sql0, sql1, rate.count)}

    def burn_down(self, tasks: int) -> dict[str, Any]:
        """Resume the paused workers over ``tasks`` queued tasks; from SIGCONT to the last
        ``finished_at``, both on the database's clock."""
        plan = self.ctx.plan
        cpu0, sql0 = self.meter.snapshot(), self.sql.snapshot()
        t0 = float(self.observer.scalar("SELECT extract(epoch FROM clock_timestamp())"))
        self.resume_workers()
        self.wait_idle(plan.wait_s)
        cpu1, sql1 = self.meter.snapshot(), self.sql.snapshot()
        end = float(self.observer.scalar("SELECT extract(epoch FROM max(finished_at)) FROM tasks"))
        settled = self.sql.settled_snapshot(plan.settle_s)
        rate = Rate(count=tasks, seconds=end - t0)
        return {**rate.as_dict(),
                "cpu_ms_per_task": _without(CpuMeter.ms_per_task(cpu0, cpu1, tasks), "api"),
                "sql_per_task": SqlAccountant.per_task(sql0, sql1, tasks, settled)}

    def latency(self, phase: str, *, rate: float, count: int, senders: int) -> dict[str, Any]:
        """Open-loop ``POST /enqueue`` at ``rate``; delays from the client's scheduled send time
        (and from ``created_at``) to the claim's ``started_at``."""
        def make_send() -> Callable[[float], None]:
            poster = self.poster()
            return lambda sent_at: poster.post("/enqueue", json.dumps(task_spec(phase, sent_at)).encode())

        run = open_loop(make_send, rate=rate, count=count, senders=senders)
        self.wait_idle(self.ctx.plan.wait_s)
        rows = self.observer.query(
            "SELECT (labels->>'bench_sent_at')::float8, extract(epoch FROM started_at)::float8,"
            " extract(epoch FROM created_at)::float8 FROM tasks WHERE labels->>'bench_phase' = %s",
            phase)
        client = latency_of([started - sent for sent, started, _ in rows])
        database = latency_of([started - created for _, started, created in rows])
        return {**client.as_dict(), "rate_per_s": round(rate, 1), "senders": senders,
                "late_sends_over_10ms": run.late_over_10ms, "max_send_lateness_ms": run.max_late_ms,
                "created_to_started": database.as_dict()}

    def fill(self, phase: str, target: int) -> int:
        """Batch-enqueue until ``target`` tasks are outstanding; returns how many are."""
        poster = self.poster()
        while (missing := target - self.outstanding()) > 0:
            size = min(self.ctx.plan.batch_size, missing)
            poster.post("/enqueue/batch", json.dumps({"tasks": [task_spec(phase)] * size}).encode())
        return self.outstanding()

    def worker_rss(self) -> int:
        return rss_bytes(self.workers())

    def trail(self) -> dict[str, Any]:
        """Rows per task over the whole run (the trail is complete: every task has its job,
        invocation, stored log artifact and events) and what the dispatcher re-sent."""
        row = self.observer.query(
            "SELECT count(*), count(*) FILTER (WHERE status = 'done'),"
            " (SELECT count(*) FROM jobs), (SELECT count(*) FROM action_invocations),"
            " (SELECT count(*) FROM artifacts WHERE status = 'stored'),"
            " (SELECT count(*) FROM task_events),"
            " (SELECT count(*) FROM task_events WHERE event = 'task_redispatched') FROM tasks")[0]
        tasks, done, jobs, invocations, artifacts, events, redispatched = (int(x) for x in row)
        duplicates, lines = _log_counts(self.stack.log_file)
        return {"tasks": tasks, "done": done, "jobs_per_task": round(jobs / tasks, 3),
                "invocations_per_task": round(invocations / tasks, 3),
                "stored_artifacts_per_task": round(artifacts / tasks, 3),
                "events_per_task": round(events / tasks, 2), "redispatched": redispatched,
                "duplicate_deliveries": duplicates, "log_lines_per_task": round(lines / tasks, 1)}

    def close(self) -> None:
        self.sql.close()
        self.observer.close()


def pipeline_max(enqueue_per_s: float, e2e_per_s: float) -> float:
    """The most tasks/s JCT can take in through ``POST /enqueue`` *and* run, both measured alone
    at their maximum: on one machine the two share the CPU, so their times per task add up."""
    if enqueue_per_s <= 0 or e2e_per_s <= 0:
        return 0.0
    return 1 / (1 / enqueue_per_s + 1 / e2e_per_s)


def _without(figures: dict[str, float], *names: str) -> dict[str, float]:
    return {k: v for k, v in figures.items() if k not in names}


def _log_counts(path: Path) -> tuple[int, int]:
    """(duplicate deliveries, lines) in JCT's JSON log, read as a stream."""
    duplicates = lines = 0
    with path.open("rb") as handle:
        for raw in handle:
            lines += 1
            if b'"duplicate_delivery"' in raw:
                duplicates += 1
    return duplicates, lines


def measure_jct(ctx: BenchContext, broker: str) -> dict[str, Any]:
    """Every JCT figure on one broker (``postgres`` or ``rabbitmq``)."""
    plan = ctx.plan
    database = f"jct_{broker}"
    env = {**SETTINGS, "JCT_DATABASE_URL": ctx.postgres.create_database(database),
           "JCT_QUEUE": RabbitMQ.queue_name(f"jct_{broker}")}
    if broker == "rabbitmq":
        env["JCT_BROKER_URL"] = ctx.rabbitmq.url
    stack = start_stack(ctx.workdir / f"jct-{broker}", **env)
    jct = RunningJct(stack, ctx, database, rabbitmq=broker == "rabbitmq")
    result: dict[str, Any] = {"settings": {k: v for k, v in env.items() if k != "JCT_DATABASE_URL"}}
    try:
        closed_loop(jct.single_operation("warmup"), clients=4, seconds=30, max_tasks=60)
        jct.wait_idle(plan.wait_s)
        result["latency_idle"] = jct.latency("idle", rate=plan.idle_rate, count=plan.idle_samples,
                                             senders=2)
        rss_baseline, tasks_baseline = jct.worker_rss(), jct.task_count()
        jct.pause_workers()
        try:
            result["enqueue_1"] = jct.enqueue_window(jct.single_operation("single1"), clients=1,
                                                     max_tasks=plan.cap("enqueue_1"))
            result["enqueue_16"] = jct.enqueue_window(jct.single_operation("single16"),
                                                      clients=plan.clients,
                                                      max_tasks=plan.cap("enqueue_16"))
            result["enqueue_batch"] = jct.enqueue_window(
                jct.batch_operation("batch", plan.batch_size), clients=1,
                max_tasks=plan.cap("enqueue_batch"))
            backlog = jct.fill("fill", plan.burn_tasks)
            result["e2e"] = jct.burn_down(backlog)
        finally:
            jct.resume_workers()
        result["worker_rss_mib"] = round(jct.worker_rss() / 2**20, 1)
        pipeline = pipeline_max(result["enqueue_16"]["per_s"], result["e2e"]["per_s"])
        load_rate = max(1.0, pipeline / 2)
        result["latency_load"] = {
            **jct.latency("load", rate=load_rate, count=max(10, int(load_rate * plan.load_seconds)),
                          senders=plan.clients),
            "pipeline_max_per_s": round(pipeline, 1)}
        if broker == "postgres":
            result["worker_rss_growth"] = _memory_check(jct, rss_baseline, tasks_baseline)
        result["trail"] = jct.trail()
    finally:
        jct.close()
        stack.stop()
        if broker == "rabbitmq":
            ctx.rabbitmq.delete_queues(env["JCT_QUEUE"])
    return result


def _memory_check(jct: RunningJct, rss_baseline: int, tasks_baseline: int) -> dict[str, Any]:
    """Worker RSS after ``memory_tasks`` tasks ran since the baseline (topped up with batches)."""
    plan = jct.ctx.plan
    poster = jct.poster()
    body = json.dumps({"tasks": [task_spec("memory")] * plan.batch_size}).encode()
    while jct.task_count() - tasks_baseline < plan.memory_tasks:
        poster.post("/enqueue/batch", body)
        while jct.outstanding() > 2_000:  # a bounded backlog: memory, not a burst, is measured
            time.sleep(0.5)
    jct.wait_idle(plan.wait_s)
    after = jct.worker_rss()
    return {"ratio": round(after / rss_baseline, 3), "baseline_mib": round(rss_baseline / 2**20, 1),
            "after_mib": round(after / 2**20, 1), "tasks": jct.task_count() - tasks_baseline}
