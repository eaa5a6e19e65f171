"""Worker side of ``dramatiq_raw``: Dramatiq on RabbitMQ with its default middleware and one
no-op actor. Configured from the environment: ``BENCH_AMQP_URL``, ``BENCH_QUEUE``."""

from __future__ import annotations

import os

import dramatiq
from dramatiq.brokers.rabbitmq import RabbitmqBroker

from bench import probe

broker = RabbitmqBroker(url=os.environ["BENCH_AMQP_URL"])
dramatiq.set_broker(broker)


@dramatiq.actor(queue_name=os.environ["BENCH_QUEUE"], max_retries=0)
def noop(sent_at: float) -> None:
    probe.started(sent_at)
