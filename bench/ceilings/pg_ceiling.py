r"""``pg_ceiling``: ``lifecycle.sql`` (the statements one echo task costs JCT on the PostgreSQL
broker: the enqueue transaction with its outbox, the broker's take, the claim, the fenced end,
the broker's ack) run by pgbench with prepared statements and as many clients as JCT has worker
threads, on JCT's schema (``jct migrate``, which also creates the broker's) in its own database
of the shared server. One pgbench "transaction" is one task's whole lifecycle.

Like JCT in the burn-down, the workers' part runs against a backlog: ``BACKLOG`` tasks (and
their messages) are written first by the script's own enqueue part (not measured), so a client's
claim of the next task or message always finds one; without it, a client whose snapshot was
taken before another's enqueue committed can find none while that other took its task (JCT's
worker then waits for the next wake-up; pgbench's ``\gset`` would abort). tasks/s counts the
tasks that ended ``done`` in the measured run."""

from __future__ import annotations

import os
import re
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.context import BenchContext
from bench.cpu import CpuMeter
from bench.sql_accounting import Observer
from bench.stats import Rate
from errors import BenchError

SCRIPT = Path(__file__).resolve().parent / "lifecycle.sql"
CLIENTS = 8  # JCT's default 2 worker processes × 4 threads
THREADS = 2  # pgbench's own threads: one per core of this machine
BACKLOG = 1_000  # queued tasks (with their messages) before the measured run
WORKER_PART = "\n-- worker:"  # where the enqueue part of lifecycle.sql ends


def measure_pg_ceiling(ctx: BenchContext) -> dict[str, Any]:
    database = "pg_ceiling"
    url = ctx.postgres.create_database(database)
    env = {k: v for k, v in os.environ.items() if not k.startswith("JCT_")}
    env.update(JCT_DATABASE_URL=url, JCT_HOME=str(ctx.workdir / "pg-ceiling"))
    subprocess.run([str(Path(sys.executable).parent / "jct"), "migrate"], env=env, check=True,
                   capture_output=True, timeout=120)
    pgbench = [str(ctx.postgres.binary("pgbench")), "-h", ctx.postgres.socket_dir, "-U", "postgres",
               "-n", "-M", "prepared", "-c", str(CLIENTS), "-j", str(THREADS)]
    enqueue_part = ctx.workdir / "pg-ceiling-enqueue.sql"
    enqueue_part.write_text(SCRIPT.read_text().split(WORKER_PART, 1)[0])
    fill = subprocess.run([*pgbench, "-t", str(BACKLOG // CLIENTS), "-f", str(enqueue_part), database],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300,
                          check=False)
    if fill.returncode != 0:
        raise BenchError(f"pgbench (backlog) exited with {fill.returncode}:\n{fill.stdout[-2000:]}")
    observer = Observer(ctx.postgres, database)
    try:
        done0 = int(observer.scalar("SELECT count(*) FROM tasks WHERE status = 'done'"))
    finally:
        observer.close()
    command = [*pgbench, "-T", str(int(max(1, ctx.plan.ceiling_seconds))), "-f", str(SCRIPT),
               database]
    meter = CpuMeter({"postgres": ctx.postgres.processes})
    cpu0, client0 = meter.snapshot(), _reaped_children_cpu()
    run = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             timeout=ctx.plan.ceiling_seconds + 120, check=False)
    cpu1, client1 = meter.snapshot(), _reaped_children_cpu()
    output = run.stdout
    if run.returncode != 0:
        raise BenchError(f"pgbench exited with {run.returncode}:\n{output[-2000:]}")
    processed = int(_field(output, r"number of transactions actually processed: (\d+)"))
    seconds = processed / float(_field(output, r"tps = ([\d.]+) \(without initial connection time\)"))
    observer = Observer(ctx.postgres, database)
    try:
        done = int(observer.scalar("SELECT count(*) FROM tasks WHERE status = 'done'")) - done0
        queued = int(observer.scalar("SELECT count(*) FROM tasks WHERE status = 'queued'"))
    finally:
        observer.close()
    cpu = CpuMeter.ms_per_task(cpu0, cpu1, done)
    cpu["client"] = round((client1 - client0) * 1000 / done, 3)  # pgbench
    return {"e2e": {**Rate(count=done, seconds=seconds).as_dict(), "cpu_ms_per_task": cpu,
                    "tasks_done_in_db": done, "pgbench_transactions": processed,
                    "backlog_before": BACKLOG, "queued_after": queued},
            "settings": {"clients": CLIENTS, "pgbench_threads": THREADS, "mode": "prepared",
                         "backlog": BACKLOG, "script": "bench/ceilings/lifecycle.sql"}}


def _reaped_children_cpu() -> float:
    """CPU seconds of this process's children that have exited (pgbench, once it returns)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _field(output: str, pattern: str) -> str:
    found = re.search(pattern, output)
    if found is None:
        raise BenchError(f"pgbench output has no {pattern!r}:\n{output[-2000:]}")
    return found.group(1)
