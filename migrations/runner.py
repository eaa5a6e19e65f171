"""Applies ``migrations/NNNN_*.sql`` in order, once each, under an advisory lock.

Each applied file is recorded with its sha256; a file changed after it was applied is refused
(write a new migration instead). The PostgreSQL broker's own schema (``dramatiq``) is created
here too, so every process can assume it exists.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import psycopg

from errors import JctError
from logging_setup import log_event

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent
_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
_LOCK_KEY = 7_311_001  # arbitrary, fixed: serialises concurrent runners


class MigrationChanged(JctError):
    """An applied migration's file no longer has the checksum it was applied with."""

    code = "migration_changed"


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def discover(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    found = []
    for path in sorted(directory.glob("*.sql")):
        match = _NAME.match(path.name)
        if match:
            found.append(Migration(int(match.group(1)), path.name, path.read_text()))
    return found


def apply_migrations(database_url: str, directory: Path = MIGRATIONS_DIR) -> list[str]:
    """Apply what is missing; returns the names applied now."""
    applied_now: list[str] = []
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY,"
                " name text NOT NULL, checksum text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {row[0]: (row[1], row[2]) for row in
                    conn.execute("SELECT version, name, checksum FROM schema_migrations")}
            for migration in discover(directory):
                if migration.version in done:
                    _check_unchanged(migration, *done[migration.version])
                    continue
                with conn.transaction():
                    conn.execute(migration.sql.encode())
                    conn.execute(
                        "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                        (migration.version, migration.name, migration.checksum),
                    )
                applied_now.append(migration.name)
                log_event(logger, "migration_applied", f"applied {migration.name}",
                          migration=migration.name)
            _init_broker_schema(conn)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
    return applied_now


def _check_unchanged(migration: Migration, name: str, checksum: str) -> None:
    if checksum != migration.checksum:
        raise MigrationChanged(
            f"migration {name} was changed after it was applied "
            f"(recorded sha256 {checksum[:12]}…, file {migration.checksum[:12]}…); "
            "add a new migration instead"
        )


def _init_broker_schema(conn: psycopg.Connection) -> None:
    from dramatiq_postgres import init

    with conn.transaction(), conn.cursor() as cursor:
        if init(cursor):
            log_event(logger, "broker_schema_created",
                      "created the dramatiq schema for the PostgreSQL broker")
