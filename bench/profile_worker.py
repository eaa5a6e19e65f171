"""Where JCT's per-task time goes (bench/README.md, *Where the time goes*).

    .venv-bench/bin/pip install py-spy      # not pinned: a tool for this script only
    .venv-bench/bin/python -m bench.profile_worker [--tasks 3000] [--out DIR]

Starts JCT as ``make bench`` does (``jct up``, PostgreSQL broker, 2 worker processes × 4
threads, 2 API workers, on a fresh embedded PostgreSQL), then:

1. CPU ms per task of each process group (psutil): API, PostgreSQL and S3 for ``--tasks``
   single ``POST /enqueue`` (16 clients) and for the same number batched (100 a request),
   with the workers paused; then worker, PostgreSQL, S3 for a burn-down of ``--tasks`` echo
   tasks, without any profiler attached.
2. The same burn-down again under ``py-spy record --subprocesses --nonblocking`` attached to
   the worker pool (``actors.pool``; ``--gil``: only threads holding the GIL, i.e. Python on
   the CPU): the raw (collapsed) stacks are written to
   ``DIR/worker.collapsed`` and the top functions, self and cumulative, printed as shares of
   the non-idle samples and as ms per task (samples / rate / tasks).
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench.context import BenchContext
from bench.cpu import CpuMeter
from bench.jct import SETTINGS, RunningJct
from bench.load import closed_loop
from bench.plan import QUICK
from bench.postgres_server import start_shared_postgres
from bench.probe import ProbeListener
from bench.rabbitmq import RabbitMQ
from harness.stack import start_stack

RATE = 100  # py-spy samples per second


def _cpu(meter: CpuMeter, before: dict[str, Any], tasks: int, *groups: str) -> dict[str, float]:
    after = meter.snapshot()
    per_task = CpuMeter.ms_per_task(before, after, tasks)
    return {group: per_task[group] for group in groups if group in per_task}


def _frame(frame: str) -> str:
    """``function (file:line)`` → ``function (file)``: aggregate over lines of one function."""
    name, _, where = frame.partition(" (")
    return f"{name} ({where.rsplit(':', 1)[0]})" if where else name


def top_functions(collapsed: Path, tasks: int, limit: int = 15) -> dict[str, Any]:
    """Self and cumulative samples per function from py-spy's raw output."""
    self_counts: Counter[str] = Counter()
    cumulative: Counter[str] = Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_frame(f) for f in stack.split(";") if not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        total += count
        self_counts[frames[-1]] += count
        for frame in set(frames):
            cumulative[frame] += count

    def rows(counter: Counter[str]) -> list[dict[str, Any]]:
        return [{"function": name, "share": round(n / total, 3),
                 "ms_per_task": round(n / RATE * 1000 / tasks, 3)}
                for name, n in counter.most_common(limit)]

    return {"samples": total, "ms_per_task_all": round(total / RATE * 1000 / tasks, 3),
            "self": rows(self_counts), "cumulative": rows(cumulative)}


def _cpu_per_task(jct: RunningJct, tasks: int) -> dict[str, Any]:
    """Enqueue (single, 16 clients; batched) with the workers paused, then an unprofiled
    burn-down of everything queued."""
    report: dict[str, Any] = {}
    closed_loop(jct.single_operation("warmup"), clients=4, seconds=30, max_tasks=60)
    jct.wait_idle(300)
    jct.pause_workers()
    cpu0 = jct.meter.snapshot()
    single = closed_loop(jct.single_operation("single"), clients=16, seconds=300, max_tasks=tasks)
    report["enqueue_single_16_clients"] = {
        "per_s": single.as_dict()["per_s"],
        "cpu_ms_per_task": _cpu(jct.meter, cpu0, single.count, "api", "postgres", "s3")}
    cpu0 = jct.meter.snapshot()
    batch = closed_loop(jct.batch_operation("batch", 100), clients=1, seconds=300, max_tasks=tasks)
    report["enqueue_batch_100"] = {
        "per_s": batch.as_dict()["per_s"],
        "cpu_ms_per_task": _cpu(jct.meter, cpu0, batch.count, "api", "postgres", "s3")}
    jct.fill("fill", tasks)  # the queue now holds single + batch; burn all of it
    outstanding = jct.outstanding()
    burn = jct.burn_down(outstanding)
    report["burn_down"] = {"tasks": outstanding, "per_s": burn["per_s"],
                           "cpu_ms_per_task": burn["cpu_ms_per_task"],
                           "sql_per_task": {k: burn["sql_per_task"][k] for k in
                                            ("statements", "write_transactions")}}
    return report


def _spy(pid: int, collapsed: Path, *, gil: bool) -> subprocess.Popen[bytes]:
    """py-spy attached to ``pid`` and its children, writing raw stacks to ``collapsed``."""
    spy = subprocess.Popen([str(Path(sys.executable).parent / "py-spy"), "record",
                            "--pid", str(pid), "--subprocesses", "--nonblocking",
                            "--rate", str(RATE), *(["--gil"] if gil else []),
                            "--format", "raw", "-o", str(collapsed)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(2)  # py-spy attaches
    return spy


def _profiled_api(jct: RunningJct, tasks: int, collapsed: Path, *, gil: bool) -> dict[str, Any]:
    """``tasks`` single ``POST /enqueue`` (16 clients) under py-spy, attached to gunicorn's
    master and its workers, the workers paused."""
    jct.pause_workers()
    master = min(jct.meter.groups["api"](), key=lambda p: p.create_time())
    spy = _spy(master.pid, collapsed, gil=gil)
    single = closed_loop(jct.single_operation("profiled"), clients=16, seconds=300,
                         max_tasks=tasks)
    spy.send_signal(signal.SIGINT)
    spy.wait(timeout=60)
    return {"profiled_enqueue": single.as_dict(), "api_profile": top_functions(collapsed, single.count)}


def _profiled(jct: RunningJct, tasks: int, collapsed: Path, *, gil: bool) -> dict[str, Any]:
    """A burn-down of ``tasks`` under py-spy, attached to the worker pool and its children."""
    jct.pause_workers()
    jct.fill("profiled", tasks)
    outstanding = jct.outstanding()
    pool_pid = next(p.pid for p in jct.workers() if "actors.pool" in " ".join(p.cmdline()))
    spy = _spy(pool_pid, collapsed, gil=gil)
    began = time.monotonic()
    profiled = jct.burn_down(outstanding)
    spy.send_signal(signal.SIGINT)
    spy.wait(timeout=60)
    return {"profiled_burn_down": {"tasks": outstanding, "per_s": profiled["per_s"],
                                   "seconds": round(time.monotonic() - began, 1),
                                   "cpu_ms_per_task": profiled["cpu_ms_per_task"]},
            "profile": top_functions(collapsed, outstanding)}


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile_worker")
    parser.add_argument("--tasks", type=int, default=3000)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--gil", action="store_true",
                        help="sample only threads holding the GIL (Python CPU; without it, "
                             "threads blocked in psycopg's wait count as busy)")
    parser.add_argument("--api", action="store_true",
                        help="also profile the API (gunicorn and its workers) while it takes "
                             "--tasks single POST /enqueue from 16 clients")
    args = parser.parse_args()
    tasks: int = args.tasks
    workdir = Path(tempfile.mkdtemp(prefix="jct-profile-"))
    out: Path = args.out or workdir
    out.mkdir(parents=True, exist_ok=True)
    postgres = start_shared_postgres(workdir / "pgdata")
    probe = ProbeListener()
    ctx = BenchContext(postgres=postgres, rabbitmq=RabbitMQ("amqp://unused"), probe=probe,
                       probe_addr="", plan=QUICK, workdir=workdir)
    env = {**SETTINGS, "JCT_DATABASE_URL": postgres.create_database("jct_profile"),
           "JCT_QUEUE": RabbitMQ.queue_name("jct_profile")}
    stack = start_stack(workdir / "jct", **env)
    jct = RunningJct(stack, ctx, "jct_profile", rabbitmq=False)
    report: dict[str, Any] = {"tasks": tasks, "gil_only": args.gil,
                              "settings": env | {"JCT_DATABASE_URL": "…"}}
    try:
        report.update(_cpu_per_task(jct, tasks))
        print(json.dumps(report, indent=1), flush=True)
        if args.api:
            report.update(_profiled_api(jct, tasks, out / "api.collapsed", gil=args.gil))
        report.update(_profiled(jct, tasks, out / "worker.collapsed", gil=args.gil))
    finally:
        jct.close()
        stack.stop()
        probe.close()
        postgres.stop(remove=True)
    (out / "profile.json").write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
