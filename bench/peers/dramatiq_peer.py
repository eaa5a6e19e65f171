"""``dramatiq_raw``: Dramatiq + RabbitMQ, ``-p 2 -t 4`` (JCT's 2 processes × 4 threads),
default middleware, a no-op actor. Enqueue is ``actor.send`` (Dramatiq's default: no publisher
confirms); ``enqueue_1_confirmed`` repeats the one-client window with confirms, as JCT sends.
Dramatiq has no bulk enqueue, so no batch figure."""

from __future__ import annotations

import importlib
import os
import sys
import time
from importlib.metadata import version

from bench.context import BenchContext
from bench.load import Operation
from bench.peers.driver import Peer
from bench.rabbitmq import RabbitMQ


def prepare(ctx: BenchContext) -> Peer:
    queue = RabbitMQ.queue_name("dramatiq")
    env = {"BENCH_AMQP_URL": ctx.rabbitmq.url, "BENCH_QUEUE": queue}
    os.environ.update(env)
    app = importlib.import_module("bench.peers.dramatiq_app")
    app.broker.declare_queue(queue)

    from dramatiq.brokers.rabbitmq import RabbitmqBroker

    confirmed = RabbitmqBroker(url=ctx.rabbitmq.url, confirm_delivery=True)
    confirmed.declare_queue(queue)

    def send_confirmed() -> Operation:
        def send() -> int:
            confirmed.enqueue(app.noop.message(time.time()))
            return 1

        return send

    def cleanup() -> None:
        confirmed.close()
        app.broker.close()
        ctx.rabbitmq.delete_queues(queue)

    return Peer(
        name="dramatiq_raw", env=env,
        worker_commands=[[sys.executable, "-m", "dramatiq", "bench.peers.dramatiq_app", "-p", "2",
                          "-t", "4", "-Q", queue]],
        enqueue_one=app.noop.send, enqueue_batch=None,
        servers={"rabbitmq": RabbitMQ.processes, "postgres": ctx.postgres.processes},
        versions={"dramatiq": version("dramatiq"), "pika": version("pika")},
        settings={"processes": 2, "threads": 4, "broker": "rabbitmq", "confirm_delivery": False},
        cleanup=cleanup, extra_windows={"enqueue_1_confirmed": send_confirmed})
