"""A private RabbitMQ node for a drill: its own node name, ports, data and log directories, and
no plugins, so stopping it never touches the machine's shared broker on 5672.

Started with the Debian wrapper ``rabbitmq-server`` (as root it switches to the ``rabbitmq``
user, whose Erlang cookie ``rabbitmqctl`` shares); stopped with ``rabbitmqctl -n <node> stop``.
Restarting on the same directories keeps durable queues and persistent messages.

On another "host" (a network namespace, ``drills.netns``) give ``address`` (the node listens
there; the ``guest`` user may then log in from other hosts) and ``prefix``, the command that runs
a program on that host; ``rabbitmqctl`` runs there too, where the node's epmd is.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from drills.ports import steady_port
from harness.wait import wait_until

SERVER = "rabbitmq-server"
CTL = "rabbitmqctl"
SYSTEM_USER = "rabbitmq"


def installed() -> bool:
    return shutil.which(SERVER) is not None and shutil.which(CTL) is not None


@dataclass
class RabbitmqNode:
    base: Path
    name: str = field(default_factory=lambda: f"jct-drill-{uuid.uuid4().hex[:8]}@localhost")
    port: int = field(default_factory=steady_port)
    dist_port: int = field(default_factory=steady_port)
    process: subprocess.Popen[bytes] | None = None
    address: str = "127.0.0.1"
    prefix: tuple[str, ...] = ()

    @classmethod
    def create(cls, *, address: str = "127.0.0.1", prefix: tuple[str, ...] = ()) -> RabbitmqNode:
        """A node over a fresh directory the ``rabbitmq`` user can write (not under pytest's
        private tmp, which only root may enter)."""
        base = Path(tempfile.mkdtemp(prefix="jct-drill-rabbitmq-"))
        base.chmod(0o755)
        for sub in ("mnesia", "log"):
            (base / sub).mkdir()
        (base / "enabled_plugins").write_text("[].\n")
        # Our own (empty) config: the machine's rabbitmq.conf pins the listener to 5672.
        config = "# private drill node: port from RABBITMQ_NODE_PORT\n"
        if address != "127.0.0.1":  # guest may only log in over loopback unless told otherwise
            config += "loopback_users = none\n"
        (base / "rabbitmq.conf").write_text(config)
        if os.geteuid() == 0:
            for path in (base, *base.iterdir()):
                shutil.chown(path, SYSTEM_USER, SYSTEM_USER)
        return cls(base=base, address=address, prefix=prefix)

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@{self.address}:{self.port}/%2F"

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(RABBITMQ_NODENAME=self.name, RABBITMQ_NODE_IP_ADDRESS=self.address,
                   RABBITMQ_NODE_PORT=str(self.port), RABBITMQ_DIST_PORT=str(self.dist_port),
                   RABBITMQ_MNESIA_BASE=str(self.base / "mnesia"),
                   RABBITMQ_LOG_BASE=str(self.base / "log"),
                   RABBITMQ_ENABLED_PLUGINS_FILE=str(self.base / "enabled_plugins"),
                   RABBITMQ_CONFIG_FILE=str(self.base / "rabbitmq.conf"))
        return env

    def start(self, timeout: float = 90) -> None:
        """Run the node in the foreground (a child of ours) and wait for its AMQP port.

        The distribution port is new at each start (clients find the node by name through
        epmd), in case the last one is still held by connections made to it."""
        self.dist_port = steady_port()
        with (self.base / "server.out").open("ab") as out:
            self.process = subprocess.Popen([*self.prefix, SERVER], env=self._env(), stdout=out,
                                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        wait_until(self._accepting, timeout=timeout, interval=0.2,
                   what=f"RabbitMQ node {self.name} on port {self.port}")

    def _accepting(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            output = (self.base / "server.out").read_text(errors="replace")[-1500:]
            raise AssertionError(f"rabbitmq-server exited with {self.process.returncode}:\n{output}")
        with socket.socket() as sock:
            return sock.connect_ex((self.address, self.port)) == 0

    def stop(self, timeout: float = 60) -> None:
        """Stop and halt the node (``rabbitmqctl stop``), then reap the foreground process."""
        if self.process is None or self.process.poll() is not None:
            return
        subprocess.run([*self.prefix, CTL, "-n", self.name, "stop"], env=self._env(), check=True,
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=timeout)
        self.process.wait(timeout)

    def _server_processes(self) -> list[psutil.Process]:
        """The Erlang VM(s) under the wrapper process (sh, su, sh, beam.smp)."""
        assert self.process is not None
        return [p for p in psutil.Process(self.process.pid).children(recursive=True)
                if p.name().startswith("beam")]

    def pause(self) -> None:
        """SIGSTOP the node: connections stay open, nothing is answered (a hung broker)."""
        for process in self._server_processes():
            process.suspend()

    def resume(self) -> None:
        for process in self._server_processes():
            process.resume()

    def close(self) -> None:
        """Stop the node however it stands, kill what is left of it, remove its files."""
        with contextlib.suppress(Exception):
            self.resume()
        with contextlib.suppress(Exception):
            self.stop()
        if self.process is not None and self.process.poll() is None:
            try:
                leftovers = psutil.Process(self.process.pid).children(recursive=True)
            except psutil.Error:
                leftovers = []
            for process in leftovers:
                with contextlib.suppress(psutil.Error):
                    process.kill()
            self.process.kill()
            self.process.wait(10)
        shutil.rmtree(self.base, ignore_errors=True)


def delete_queue(url: str, queue: str) -> None:
    """Remove a test's RabbitMQ queues (and Dramatiq's delay/dead-letter companions)."""
    import pika

    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = connection.channel()
        for name in (queue, f"{queue}.DQ", f"{queue}.XQ"):
            channel.queue_delete(name)
    finally:
        connection.close()
