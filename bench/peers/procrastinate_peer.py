"""``procrastinate``: 2 worker processes × concurrency 4 on its own database of the shared
PostgreSQL, an async no-op task, default connector settings. Enqueue is ``defer``, batch is
``batch_defer`` (one INSERT for the batch)."""

from __future__ import annotations

import importlib
import os
import sys
from importlib.metadata import version

from bench.context import BenchContext
from bench.peers.driver import Peer
from bench.rabbitmq import RabbitMQ


def prepare(ctx: BenchContext) -> Peer:
    queue = "bench"
    env = {"BENCH_PG_CONNINFO": ctx.postgres.create_database("procrastinate"), "BENCH_QUEUE": queue}
    os.environ.update(env)
    module = importlib.import_module("bench.peers.procrastinate_app")
    module.app.open()
    module.app.schema_manager.apply_schema()
    commands = [[sys.executable, "-m", "procrastinate", "--app=bench.peers.procrastinate_app.app",
                 "worker", "-c", "4", "-q", queue, "-n", f"w{i}"] for i in (1, 2)]

    def batch(sent: list[float]) -> None:
        module.noop.batch_defer(*({"sent_at": t} for t in sent))

    return Peer(
        name="procrastinate", env=env, worker_commands=commands,
        enqueue_one=lambda sent_at: module.noop.defer(sent_at=sent_at), enqueue_batch=batch,
        servers={"postgres": ctx.postgres.processes, "rabbitmq": RabbitMQ.processes},
        versions={"procrastinate": version("procrastinate"), "psycopg": version("psycopg")},
        settings={"processes": 2, "concurrency": 4, "task": "async", "broker": "postgresql"},
        cleanup=module.app.close)
