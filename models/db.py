"""The one database handle: a pooled peewee database over psycopg 3, initialised from settings,
and the policy for riding out a database that goes away."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import peewee
from playhouse.postgres_ext import PooledPostgresqlExtDatabase

from errors import Unavailable
from logging_setup import log_event

logger = logging.getLogger(__name__)

T = TypeVar("T")
CONNECTION_ERRORS = (peewee.OperationalError, peewee.InterfaceError)

database = PooledPostgresqlExtDatabase(
    None, max_connections=32, stale_timeout=300, timeout=10,
)


def init_database(url: str) -> None:
    """Point the handle at ``url`` (``postgresql://…``, including Unix-socket ``?host=`` URLs)."""
    if database.database is not None:
        database.close_all()  # pooled connections belong to the old target
    database.init(url, max_connections=32, stale_timeout=300, timeout=10, connect_timeout=5,
                  application_name="jct")


def reset_connection() -> None:
    """After the server went away: drop this thread's dead connection and the idle pooled ones.
    Other threads' connections are left alone; they fail and reset on their own."""
    with contextlib.suppress(*CONNECTION_ERRORS):  # close() forgets it even when closing fails
        database.close()
    database.close_idle()


@contextmanager
def connection() -> Iterator[peewee.Database]:
    """A pooled connection for a unit of work; database outages become ``Unavailable``."""
    try:
        opened = database.connect(reuse_if_open=True)
    except CONNECTION_ERRORS as exc:
        raise Unavailable("database unreachable", detail=str(exc).strip()[:200]) from exc
    try:
        yield database
    except CONNECTION_ERRORS as exc:
        reset_connection()
        raise Unavailable("database unreachable", detail=str(exc).strip()[:200]) from exc
    finally:
        if opened and not database.is_closed():
            try:
                database.close()
            except CONNECTION_ERRORS:
                reset_connection()


def retrying(what: str, write: Callable[[], T], *, for_s: float) -> T:
    """Run ``write`` (one transaction), retrying through a database outage for up to ``for_s``
    seconds with backoff; then the error stands. For a worker's bookkeeping, whose lease would
    otherwise run out and hand a healthy attempt to the rescuer."""
    deadline = time.monotonic() + for_s
    delay = 0.2
    while True:
        try:
            return write()
        except CONNECTION_ERRORS as exc:
            if time.monotonic() + delay > deadline:
                raise
            log_event(logger, "db_write_retry", f"{what}: database unreachable, retrying in "
                      f"{delay:.1f}s ({str(exc).strip()[:120]})", level=logging.WARNING)
            reset_connection()
            time.sleep(delay)
            delay = min(delay * 2, 5.0)


def ping() -> None:
    """One round trip; raises ``Unavailable`` when the server cannot be reached."""
    with connection() as db:
        db.execute_sql("SELECT 1")
