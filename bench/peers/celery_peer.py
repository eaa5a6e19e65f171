"""``celery``: Celery + RabbitMQ with ``acks_late``, run as 2 worker processes × 4 threads
(``-P threads -c 4`` twice) to match JCT's 2 × 4 (prefork would add a process hop per task and
cannot give 4 slots per process without 4 processes). Enqueue is ``apply_async``; Celery has no
bulk publish (``group`` publishes one by one), so no batch figure."""

from __future__ import annotations

import importlib
import os
import sys
from importlib.metadata import version

from bench.context import BenchContext
from bench.peers.driver import Peer
from bench.rabbitmq import RabbitMQ


def prepare(ctx: BenchContext) -> Peer:
    queue = RabbitMQ.queue_name("celery")
    env = {"BENCH_AMQP_URL": ctx.rabbitmq.url, "BENCH_QUEUE": queue}
    os.environ.update(env)
    app = importlib.import_module("bench.peers.celery_app")
    commands = [[sys.executable, "-m", "celery", "-A", "bench.peers.celery_app", "worker",
                 "-P", "threads", "-c", "4", "-Q", queue, "-n", f"w{i}-{queue}@bench",
                 "--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "WARNING"]
                for i in (1, 2)]

    def cleanup() -> None:
        app.app.close()
        ctx.rabbitmq.delete_queues(queue)

    return Peer(
        name="celery", env=env, worker_commands=commands,
        enqueue_one=lambda sent_at: app.noop.apply_async(args=(sent_at,)), enqueue_batch=None,
        servers={"rabbitmq": RabbitMQ.processes, "postgres": ctx.postgres.processes},
        versions={"celery": version("celery"), "kombu": version("kombu"), "amqp": version("amqp")},
        settings={"processes": 2, "threads": 4, "pool": "threads", "acks_late": True,
                  "prefetch_multiplier": 4, "broker": "rabbitmq"},
        cleanup=cleanup)
