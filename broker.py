"""The message broker, chosen by settings: RabbitMQ for ``JCT_BROKER_URL=amqp://…``, else the
PostgreSQL broker (``dramatiq-postgres``) on the system-of-record database.

The API sends wake-up messages with ``send_task`` without importing the actors: the message
names the actor and carries the trace context in its options.
"""

from __future__ import annotations

import logging
import threading

import dramatiq
from dramatiq import Message
from dramatiq.brokers.rabbitmq import RabbitmqBroker

import tracing
from config import Settings, get_settings
from errors import DispatchError

logger = logging.getLogger(__name__)

PROCESS_TASK = "process_task"

_lock = threading.Lock()
_broker: dramatiq.Broker | None = None


def build_broker(settings: Settings) -> dramatiq.Broker:
    """A broker for these settings; actors never know which one runs them."""
    broker: dramatiq.Broker
    if settings.broker_url:
        broker = RabbitmqBroker(url=settings.broker_url, confirm_delivery=True)
    else:
        from dramatiq_postgres import PostgresBroker

        if settings.database_url is None:
            raise DispatchError("the PostgreSQL broker needs JCT_DATABASE_URL (set by jct up)")
        broker = PostgresBroker(url=settings.database_url, results=False)
    broker.declare_queue(settings.queue)
    return broker


def get_broker() -> dramatiq.Broker:
    """The process-wide broker, built on first use (after gunicorn/dramatiq fork)."""
    global _broker
    with _lock:
        if _broker is None:
            _broker = build_broker(get_settings())
            dramatiq.set_broker(_broker)
        return _broker


def reset_broker() -> None:
    """Close and forget the broker (tests switch between brokers)."""
    global _broker
    with _lock:
        if _broker is not None:
            _broker.close()
        _broker = None


def task_message(task_id: str, trace_id: str) -> Message[None]:
    """The wake-up message for one task, carrying the trace context in its options."""
    return Message(
        queue_name=get_settings().queue,
        actor_name=PROCESS_TASK,
        args=(task_id,),
        kwargs={},
        options={"trace_id": trace_id, "task_id": task_id,
                 "traceparent": tracing.format_traceparent(trace_id)},
    )


def send_task(task_id: str, trace_id: str, *, delay_s: float = 0.0) -> str:
    """Ask a worker to run ``task_id``; returns the message id. Raises ``DispatchError``."""
    message = task_message(task_id, trace_id)
    delay_ms = int(delay_s * 1000) if delay_s > 0 else None
    try:
        get_broker().enqueue(message, delay=delay_ms)
    except Exception as exc:  # any broker/connection error: the caller records it, no loss
        raise DispatchError(f"broker refused the message: {type(exc).__name__}: {exc}") from exc
    return message.message_id
