"""Worker side of ``celery``: Celery on RabbitMQ (py-amqp) with ``acks_late``, no result
backend, one no-op task. Configured from the environment: ``BENCH_AMQP_URL``, ``BENCH_QUEUE``."""

from __future__ import annotations

import os

from celery import Celery

from bench import probe

app = Celery("bench", broker=os.environ["BENCH_AMQP_URL"].replace("amqp://", "pyamqp://", 1))
app.conf.update(
    task_default_queue=os.environ["BENCH_QUEUE"],
    task_acks_late=True,
    task_ignore_result=True,
    broker_connection_retry_on_startup=True,
    broker_heartbeat=600,  # as every system's URL: consumers are paused while a backlog fills
    worker_enable_remote_control=False,  # no pidbox queue per worker
    worker_hijack_root_logger=False,
)


@app.task(name="noop")
def noop(sent_at: float) -> None:
    probe.started(sent_at)
