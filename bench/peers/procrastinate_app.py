"""Worker side of ``procrastinate``: its PostgreSQL connector (defaults) and one no-op async
task. Configured from the environment: ``BENCH_PG_CONNINFO``, ``BENCH_QUEUE``."""

from __future__ import annotations

import os

import procrastinate

from bench import probe

app = procrastinate.App(connector=procrastinate.PsycopgConnector(
    conninfo=os.environ["BENCH_PG_CONNINFO"]))


@app.task(name="noop", queue=os.environ["BENCH_QUEUE"])
async def noop(sent_at: float) -> None:
    probe.started(sent_at)
