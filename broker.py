"""The message broker, chosen by settings: RabbitMQ for ``JCT_BROKER_URL=amqp://…``, else the
PostgreSQL broker (``dramatiq-postgres``) on the system-of-record database.

The API sends wake-up messages with ``TaskBroker.send_task`` without importing the actors: the
message names the actor and carries the trace context in its options.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import dramatiq
import pika
from dramatiq import Message
from dramatiq.brokers.rabbitmq import RabbitmqBroker

import tracing
from config import Settings
from errors import DispatchError
from models.state_machine import Outbox

PROCESS_TASK = "process_task"
PG_CONSUMER_TTL_S = 5.0
AMQP_HEARTBEAT_S = 10


def build_dramatiq_broker(settings: Settings) -> dramatiq.Broker:
    """A Dramatiq broker for these settings; actors never know which one runs them."""
    broker: dramatiq.Broker
    if settings.broker_url:
        broker = RabbitmqBroker(url=with_heartbeat(settings.broker_url), confirm_delivery=True)
    else:
        from pg_broker import TowerPostgresBroker, pg_broker_pool

        if settings.database_url is None:
            raise DispatchError("the PostgreSQL broker needs JCT_DATABASE_URL (set by jct up)")
        # A consumer that died (killed, crashed) leaves the messages it had taken "consumed";
        # they go back to the queue once its heartbeat is older than the TTL. The library's
        # defaults (15 s beats, 60 s TTL, upkeep every 30 s) let a few kills hold messages
        # back for a minute or more; beating every second makes it a few seconds. A frozen
        # consumer's messages come back too: their claim then finds the task taken.
        pool = pg_broker_pool(settings)
        broker = TowerPostgresBroker(pool=pool, results=False, heartbeat_interval=1.0,
                                     heartbeat_ttl=PG_CONSUMER_TTL_S, maintenance_interval=2.0)
    broker.declare_queue(settings.queue)
    return broker


def with_heartbeat(url: str) -> str:
    """An AMQP URL with a short heartbeat unless it sets one: RabbitMQ keeps delivering to a
    consumer whose host dropped off the network until its heartbeat times out (60 s by default),
    and those messages wait there."""
    parts = urlsplit(url)
    given = dict(parse_qsl(parts.query))
    given.setdefault("heartbeat", str(AMQP_HEARTBEAT_S))
    return urlunsplit(parts._replace(query=urlencode(given)))


def task_message(queue: str, task_id: str, trace_id: str) -> Message[None]:
    """The wake-up message for one task, carrying the trace context in its options."""
    options: dict[str, str] = {"task_id": task_id}
    tracing.inject(options, tracing.MESSAGE, trace_id=trace_id)
    return Message(queue_name=queue, actor_name=PROCESS_TASK, args=(task_id,), kwargs={},
                   options=options)


class TaskBroker:
    """Sends the wake-up messages of one runtime over its Dramatiq broker."""

    def __init__(self, settings: Settings) -> None:
        self.queue = settings.queue
        self.dramatiq = build_dramatiq_broker(settings)
        # The Dramatiq broker class it is (``PostgresBroker``, ``RabbitmqBroker``), recorded on
        # dispatch events; the tower's own subclass (``pg_broker.TowerPostgresBroker``) is named
        # by the library class it refines, so the events name one broker however it is tuned.
        self.name: str = next(cls.__name__ for cls in type(self.dramatiq).__mro__
                              if cls.__module__.startswith("dramatiq"))

    def send_task(self, task_id: str, trace_id: str, *, delay_s: float = 0.0) -> str:
        """Ask a worker to run ``task_id``; returns the message id. Raises ``DispatchError``."""
        message = task_message(self.queue, task_id, trace_id)
        self._enqueue(message, int(delay_s * 1000) if delay_s > 0 else None)
        return message.message_id

    def _enqueue(self, message: Message[None], delay_ms: int | None) -> None:
        try:
            self.dramatiq.enqueue(message, delay=delay_ms)
        except Exception as exc:  # any broker/connection error: the caller records it, no loss
            raise DispatchError(f"broker refused the message: {type(exc).__name__}: {exc}") from exc

    def message(self, task_id: str, trace_id: str) -> Message[None]:
        """The wake-up for ``task_id`` (its traceparent names the span active now)."""
        return task_message(self.queue, task_id, trace_id)

    def send_messages(self, messages: list[Message[None]]) -> None:
        """Many wake-ups at once. On RabbitMQ in one AMQP transaction: published back to back
        and committed with one round trip, so the broker has all of them or none (a publisher
        confirm each, as ``send_task`` waits for, costs a round trip a message). Raises
        ``DispatchError``: then none was sent."""
        if not isinstance(self.dramatiq, RabbitmqBroker):
            for message in messages:
                self._enqueue(message, None)
            return
        rabbit = self.dramatiq
        try:
            rabbit.declare_queue(self.queue, ensure=True)
            channel = rabbit.connection.channel()
            try:
                channel.tx_select()
                for message in messages:
                    rabbit.emit_before("enqueue", message, None)
                    channel.basic_publish(
                        exchange="", routing_key=self.queue, body=message.encode(),
                        properties=pika.BasicProperties(
                            delivery_mode=2, priority=message.options.get("broker_priority")))
                channel.tx_commit()
            finally:
                if channel.is_open:
                    channel.close()
        except Exception as exc:  # any broker/connection error: the caller records it, no loss
            del rabbit.connection  # the next send starts afresh, as Dramatiq's own enqueue does
            raise DispatchError(f"broker refused the messages: {type(exc).__name__}: {exc}") from exc
        for message in messages:
            rabbit.emit_after("enqueue", message, None)

    def outbox(self) -> Outbox | None:
        """On the PostgreSQL broker, the wake-ups are written with the tasks, in the enqueue's
        transaction (``models.state_machine.Outbox``); RabbitMQ has none (send after commit)."""
        if isinstance(self.dramatiq, RabbitmqBroker):
            return None
        return Outbox(queue=self.queue, messages=self._encoded, broker=self.name)

    def _encoded(self, tasks: list[tuple[str, str]]) -> list[tuple[str, dict[str, Any]]]:
        """The messages as the PostgreSQL broker stores them (Dramatiq's encoding, as JSON)."""
        messages = [task_message(self.queue, task_id, trace_id) for task_id, trace_id in tasks]
        return [(message.message_id, json.loads(message.encode())) for message in messages]

    def waiting_in_rabbitmq(self) -> int:
        """Messages waiting in this queue and its delay queue on RabbitMQ (not the ones
        consumers have taken). Raises for the PostgreSQL broker, whose messages the database
        counts (``models.dispatch.waiting_in_pg_broker``)."""
        if not isinstance(self.dramatiq, RabbitmqBroker):
            raise TypeError("not a RabbitMQ broker")
        ready, delayed, _dead = self.dramatiq.get_queue_message_counts(self.queue)
        return int(ready + delayed)

    def close(self) -> None:
        self.dramatiq.close()
        pool = getattr(self.dramatiq, "pool", None)
        if pool is not None and not getattr(self.dramatiq, "_owns_pool", True):
            pool.close()  # the PostgreSQL broker was given its pool (build_dramatiq_broker)
