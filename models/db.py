"""The one database handle: a pooled peewee database over psycopg 3, initialised from settings."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import peewee
from playhouse.postgres_ext import PooledPostgresqlExtDatabase

from errors import Unavailable

database = PooledPostgresqlExtDatabase(
    None, max_connections=32, stale_timeout=300, timeout=10,
)


def init_database(url: str) -> None:
    """Point the handle at ``url`` (``postgresql://…``, including Unix-socket ``?host=`` URLs)."""
    if database.database is not None:
        database.close_all()  # pooled connections belong to the old target
    database.init(url, max_connections=32, stale_timeout=300, timeout=10, connect_timeout=5,
                  application_name="jct")


@contextmanager
def connection() -> Iterator[peewee.Database]:
    """A pooled connection for a unit of work; database outages become ``Unavailable``."""
    try:
        opened = database.connect(reuse_if_open=True)
    except (peewee.OperationalError, peewee.InterfaceError) as exc:
        raise Unavailable("database unreachable", detail=str(exc).strip()[:200]) from exc
    try:
        yield database
    except (peewee.OperationalError, peewee.InterfaceError) as exc:
        # The server went away mid-unit: drop pooled connections, they are dead too.
        opened = True
        database.close_all()
        raise Unavailable("database unreachable", detail=str(exc).strip()[:200]) from exc
    finally:
        if opened and not database.is_closed():
            database.close()


def ping() -> None:
    """One round trip; raises ``Unavailable`` when the server cannot be reached."""
    with connection() as db:
        db.execute_sql("SELECT 1")
