"""The RabbitMQ every RabbitMQ system of a run shares: this machine's server (there is no
embedded one). Systems get unique queue names, deleted afterwards, rather than vhosts: creating
a vhost needs ``rabbitmqctl`` or the management plugin, a queue name needs nothing.

The URL carries ``heartbeat=600`` for every system alike: the bench pauses consumers with
SIGSTOP while it fills a backlog, and RabbitMQ would drop a connection silent for 60 s.
"""

from __future__ import annotations

import contextlib
import uuid
from dataclasses import dataclass
from urllib.parse import urlencode, urlparse, urlunparse

import pika
import psutil
from pika.exceptions import AMQPError

DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"
HEARTBEAT_S = 600


@dataclass(frozen=True)
class RabbitMQ:
    base_url: str

    @property
    def url(self) -> str:
        """The URL every system connects with (``heartbeat`` added)."""
        parts = urlparse(self.base_url)
        return urlunparse(parts._replace(query=urlencode({"heartbeat": HEARTBEAT_S})))

    @staticmethod
    def queue_name(system: str) -> str:
        return f"jctbench_{system}_{uuid.uuid4().hex[:8]}"

    def version(self) -> str:
        connection = pika.BlockingConnection(pika.URLParameters(self.base_url))
        try:
            props = connection._impl.server_properties
            return str(props.get("version", "?"))
        finally:
            connection.close()

    def reachable(self) -> bool:
        try:
            self.version()
        except AMQPError:
            return False
        return True

    def delete_queues(self, *names: str) -> None:
        """Delete ``names`` (and Dramatiq's ``.DQ``/``.XQ`` companions); missing ones are fine."""
        connection = pika.BlockingConnection(pika.URLParameters(self.base_url))
        try:
            for name in names:
                for queue in (name, f"{name}.DQ", f"{name}.XQ"):
                    channel = connection.channel()
                    with contextlib.suppress(AMQPError):
                        channel.queue_delete(queue)
                    with contextlib.suppress(AMQPError):
                        if channel.is_open:
                            channel.close()
        finally:
            connection.close()

    @staticmethod
    def processes() -> list[psutil.Process]:
        """The server's Erlang VM and its helpers. Shared with whoever else uses this RabbitMQ:
        their load counts too (the run records the background rate)."""
        found: list[psutil.Process] = []
        for process in psutil.process_iter(["name", "cmdline"]):
            cmdline = " ".join(process.info["cmdline"] or [])
            if process.info["name"] == "beam.smp" and "rabbit" in cmdline:
                with contextlib.suppress(psutil.NoSuchProcess):
                    found.extend([process, *process.children(recursive=True)])
        return found
