"""``pg_ceiling``: ``lifecycle.sql`` (every row JCT writes for one echo task, in JCT's
statements and transactions) run by pgbench with prepared statements and as many clients as JCT
has worker threads, on JCT's schema (``jct migrate``) in its own database of the shared server.
One pgbench "transaction" is one task's whole lifecycle, so its tps is tasks/s."""

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


def measure_pg_ceiling(ctx: BenchContext) -> dict[str, Any]:
    database = "pg_ceiling"
    url = ctx.postgres.create_database(database)
    env = {k: v for k, v in os.environ.items() if not k.startswith("JCT_")}
    env.update(JCT_DATABASE_URL=url, JCT_HOME=str(ctx.workdir / "pg-ceiling"))
    subprocess.run([str(Path(sys.executable).parent / "jct"), "migrate"], env=env, check=True,
                   capture_output=True, timeout=120)
    command = [str(ctx.postgres.binary("pgbench")), "-h", ctx.postgres.socket_dir, "-U", "postgres",
               "-n", "-M", "prepared", "-c", str(CLIENTS), "-j", str(THREADS),
               "-T", str(int(max(1, ctx.plan.ceiling_seconds))), "-f", str(SCRIPT), database]
    meter = CpuMeter({"postgres": ctx.postgres.processes})
    cpu0, client0 = meter.snapshot(), _reaped_children_cpu()
    pgbench = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             timeout=ctx.plan.ceiling_seconds + 120, check=False)
    cpu1, client1 = meter.snapshot(), _reaped_children_cpu()
    output = pgbench.stdout
    if pgbench.returncode != 0:
        raise BenchError(f"pgbench exited with {pgbench.returncode}:\n{output[-2000:]}")
    processed = int(_field(output, r"number of transactions actually processed: (\d+)"))
    seconds = processed / float(_field(output, r"tps = ([\d.]+) \(without initial connection time\)"))
    observer = Observer(ctx.postgres, database)
    try:
        done = int(observer.scalar("SELECT count(*) FROM tasks WHERE status = 'done'"))
    finally:
        observer.close()
    cpu = CpuMeter.ms_per_task(cpu0, cpu1, processed)
    cpu["client"] = round((client1 - client0) * 1000 / processed, 3)  # pgbench
    return {"e2e": {**Rate(count=processed, seconds=seconds).as_dict(), "cpu_ms_per_task": cpu,
                    "tasks_done_in_db": done},
            "settings": {"clients": CLIENTS, "pgbench_threads": THREADS, "mode": "prepared",
                         "script": "bench/ceilings/lifecycle.sql"}}


def _reaped_children_cpu() -> float:
    """CPU seconds of this process's children that have exited (pgbench, once it returns)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _field(output: str, pattern: str) -> str:
    found = re.search(pattern, output)
    if found is None:
        raise BenchError(f"pgbench output has no {pattern!r}:\n{output[-2000:]}")
    return found.group(1)
