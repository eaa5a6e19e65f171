"""One peer measured the same way as every other: its worker processes started from its
``*_app`` module, the enqueue windows run from this process with the workers paused (SIGSTOP),
the backlog filled, then the workers resumed (SIGCONT) and the burn-down timed from SIGCONT to
the last job's start report (``bench.probe``)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psutil

from bench.context import ROOT, BenchContext
from bench.cpu import CpuMeter, Group, rss_bytes, signal_all, tree_of
from bench.load import Operation, closed_loop, open_loop
from bench.probe import ENV as PROBE_ENV
from bench.probe import Start
from bench.stats import Rate, latency_of
from errors import BenchError

READY_TIMEOUT_S = 120.0
STALL_S = 60.0  # no start report for this long while some are missing: stop waiting, report it


@dataclass
class Peer:
    """What a ``*_peer`` module prepares for the driver."""

    name: str
    env: dict[str, str]
    worker_commands: list[list[str]]
    enqueue_one: Callable[[float], None]
    enqueue_batch: Callable[[list[float]], None] | None
    servers: dict[str, Group]
    versions: dict[str, str]
    settings: dict[str, Any]
    cleanup: Callable[[], None]
    extra_windows: dict[str, Callable[[], Operation]] = field(default_factory=dict)
    worker_pids: int = 2  # distinct processes that must report before measuring


class _Workers:
    def __init__(self, ctx: BenchContext, peer: Peer) -> None:
        env = {**os.environ, **peer.env, PROBE_ENV: ctx.probe_addr, "PYTHONPATH": str(ROOT)}
        self.log = ctx.workdir / f"{peer.name}.log"
        with self.log.open("wb") as out:
            self.procs = [subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                                           stdin=subprocess.DEVNULL, start_new_session=True)
                          for cmd in peer.worker_commands]

    def processes(self) -> list[psutil.Process]:
        return [p for proc in self.procs for p in tree_of(proc.pid)()]

    def check_alive(self) -> None:
        for proc in self.procs:
            if proc.poll() is not None:
                tail = self.log.read_text(errors="replace")[-2000:]
                raise BenchError(f"worker pid {proc.pid} exited with {proc.returncode}:\n{tail}")

    def stop(self) -> None:
        signal_all(self.processes(), signal.SIGCONT)
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def measure_peer(ctx: BenchContext, peer: Peer) -> dict[str, Any]:
    plan = ctx.plan
    workers = _Workers(ctx, peer)
    meter = CpuMeter({"worker": workers.processes, **peer.servers})
    result: dict[str, Any] = {"settings": peer.settings, "versions": peer.versions}
    try:
        _wait_ready(ctx, peer, workers)
        result["latency_idle"] = _idle_latency(ctx, peer)
        signal_all(workers.processes(), signal.SIGSTOP)
        enqueued = 0
        for key, make, clients, cap in _windows(ctx, peer):
            window = _enqueue_window(meter, make, clients=clients, seconds=plan.enqueue_seconds,
                                     max_tasks=cap)
            result[key] = window
            enqueued += window["count"]
        enqueued += _fill(peer, plan.burn_tasks - enqueued, plan.batch_size, plan.clients)
        result["e2e"] = _burn_down(ctx, meter, workers, enqueued)
        result["worker_rss_mib"] = round(rss_bytes(workers.processes()) / 2**20, 1)
    finally:
        workers.stop()
        peer.cleanup()
    return result


def _wait_ready(ctx: BenchContext, peer: Peer, workers: _Workers) -> None:
    """Send no-op jobs until ``worker_pids`` distinct processes ran one, then wait for all sent."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    mark, sent = ctx.probe.mark(), 0
    while len({s.pid for s in ctx.probe.since(mark)}) < peer.worker_pids:
        workers.check_alive()
        if time.monotonic() > deadline:
            raise BenchError(f"{peer.name}: workers did not all answer in {READY_TIMEOUT_S:.0f}s")
        for _ in range(8):
            peer.enqueue_one(time.time())
        sent += 8
        time.sleep(0.5)
    _wait_reports(ctx, mark, sent, what=f"{peer.name} warm-up")


def _wait_reports(ctx: BenchContext, mark: int, count: int, *, what: str) -> list[Start]:
    """Wait for ``count`` start reports after ``mark``; stops early when none came for
    ``STALL_S`` (a lost datagram or a stuck worker) and returns what arrived."""
    deadline = time.monotonic() + ctx.plan.wait_s
    seen, last_progress = -1, time.monotonic()
    while True:
        starts = ctx.probe.wait_count(mark, count, timeout=1.0)
        if len(starts) >= count:
            return starts
        if len(starts) != seen:
            seen, last_progress = len(starts), time.monotonic()
        if time.monotonic() - last_progress > STALL_S or time.monotonic() > deadline:
            if not starts:
                raise BenchError(f"{what}: no job reported its start")
            return starts


def _idle_latency(ctx: BenchContext, peer: Peer) -> dict[str, Any]:
    plan = ctx.plan
    mark = ctx.probe.mark()
    open_loop(lambda: peer.enqueue_one, rate=plan.idle_rate, count=plan.idle_samples, senders=2)
    starts = _wait_reports(ctx, mark, plan.idle_samples, what=f"{peer.name} idle latency")
    return {**latency_of([s.started_at - s.sent_at for s in starts]).as_dict(),
            "rate_per_s": plan.idle_rate, "missing": plan.idle_samples - len(starts)}


def _windows(ctx: BenchContext, peer: Peer
             ) -> list[tuple[str, Callable[[], Operation], int, int]]:
    plan = ctx.plan

    def single() -> Operation:
        def send() -> int:
            peer.enqueue_one(time.time())
            return 1

        return send

    windows = [("enqueue_1", single, 1, plan.cap("enqueue_1")),
               ("enqueue_16", single, plan.clients, plan.cap("enqueue_16"))]
    batch = peer.enqueue_batch
    if batch is not None:
        def batched() -> Operation:
            def send() -> int:
                batch([time.time()] * plan.batch_size)
                return plan.batch_size

            return send

        windows.append(("enqueue_batch", batched, 1, plan.cap("enqueue_batch")))
    windows.extend((key, make, 1, plan.cap("extra"))
                   for key, make in peer.extra_windows.items())
    return windows


def _enqueue_window(meter: CpuMeter, make: Callable[[], Operation], *, clients: int, seconds: float,
                    max_tasks: int) -> dict[str, Any]:
    cpu0 = meter.snapshot()
    rate = closed_loop(make, clients=clients, seconds=seconds, max_tasks=max_tasks)
    cpu1 = meter.snapshot()
    figures = CpuMeter.ms_per_task(cpu0, cpu1, rate.count)
    figures.pop("worker", None)  # paused
    return {**rate.as_dict(), "clients": clients, "cpu_ms_per_task": figures}


def _fill(peer: Peer, missing: int, batch_size: int, clients: int) -> int:
    """Enqueue ``missing`` more jobs (as fast as the peer allows); returns how many were sent."""
    if missing <= 0:
        return 0
    batch = peer.enqueue_batch
    if batch is not None:
        sent = 0
        while sent < missing:
            size = min(batch_size, missing - sent)
            batch([time.time()] * size)
            sent += size
        return sent

    def single() -> Operation:
        def send() -> int:
            peer.enqueue_one(time.time())
            return 1

        return send

    return closed_loop(single, clients=clients, seconds=3600, max_tasks=missing).count


def _burn_down(ctx: BenchContext, meter: CpuMeter, workers: _Workers, tasks: int) -> dict[str, Any]:
    mark = ctx.probe.mark()
    cpu0 = meter.snapshot()
    started = time.time()
    signal_all(workers.processes(), signal.SIGCONT)
    starts = _wait_reports(ctx, mark, tasks, what="burn-down")
    cpu1 = meter.snapshot()
    end = max(s.arrived for s in starts)
    rate = Rate(count=len(starts), seconds=end - started)
    return {**rate.as_dict(), "enqueued": tasks, "missing": tasks - len(starts),
            "cpu_ms_per_task": CpuMeter.ms_per_task(cpu0, cpu1, len(starts))}
