"""The database handle: a pooled peewee database over psycopg 3, one per runtime.

Everything above ``models/`` speaks in domain terms; this module is where SQL meets the wire.
A server that goes away surfaces as ``Unavailable`` (one error type for the layers above),
after this thread's dead connection and the idle pooled ones are dropped.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import peewee
import psycopg
from playhouse.postgres_ext import PooledPostgresqlExtDatabase
from psycopg.conninfo import make_conninfo
from psycopg.pq import TransactionStatus

from errors import Unavailable

CONNECTION_ERRORS = (peewee.OperationalError, peewee.InterfaceError)
Params = Mapping[str, Any] | Sequence[Any] | None

# A database host that goes silent (a partition drops packets, nothing resets the connection)
# must surface as an error in seconds, not when TCP gives up minutes later: keepalives probe an
# idle connection, and tcp_user_timeout bounds how long sent data may stay unacknowledged. The
# worker then says why (heartbeat_failed, db_write_retry, …) and the API answers 503.
LIVENESS = {"keepalives": 1, "keepalives_idle": 5, "keepalives_interval": 2,
            "keepalives_count": 3, "tcp_user_timeout": 6000}
HEALTH_TIMEOUT_S = 3


def with_liveness(url: str) -> str:
    """``url`` with the liveness settings added as conninfo parameters it does not already
    set (for other pools over the same database, e.g. the PostgreSQL broker's)."""
    parts = urlsplit(url)
    given = dict(parse_qsl(parts.query))
    extra = {key: str(value) for key, value in LIVENESS.items() if key not in given}
    return urlunsplit(parts._replace(query=urlencode({**given, **extra})))


def _unavailable(exc: BaseException) -> Unavailable:
    return Unavailable("database unreachable", detail=str(exc).strip()[:200])


def json_value(value: Any) -> Any:
    """A column value as JSON-ready data (timestamps as ISO 8601, UUIDs as text)."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


class _Pool(PooledPostgresqlExtDatabase):
    """peewee's pool checks every connection it hands out with a round trip (``SELECT 1``): one
    more query for each unit of work. A connection given back moments ago is trusted instead;
    if the server went away meanwhile, the first statement fails and the connection is dropped
    (``Database.reset``) as for any lost server."""

    TRUSTED_FOR_S = 5.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._released: dict[int, float] = {}

    def _close(self, conn: Any, close_conn: bool = False) -> None:
        super()._close(conn, close_conn)
        if close_conn:
            self._released.pop(id(conn), None)
        else:
            self._released[id(conn)] = time.monotonic()

    def _is_closed(self, conn: Any) -> bool:
        if conn.closed or conn.info.transaction_status != TransactionStatus.IDLE:
            return bool(super()._is_closed(conn))
        if time.monotonic() - self._released.get(id(conn), float("-inf")) < self.TRUSTED_FOR_S:
            return False
        return bool(super()._is_closed(conn))


class Database:
    """A connection pool to one PostgreSQL database, with the unit-of-work and transaction
    boundaries the data layer uses."""

    def __init__(self, url: str, *, max_connections: int = 32,
                 prepared_statements: bool = True) -> None:
        self.url = url
        # peewee parses ``postgresql://…`` URLs itself only through playhouse.db_url; psycopg
        # takes the URL as its conninfo, which also covers Unix-socket ``?host=/dir`` URLs.
        self._db = _Pool(
            url, max_connections=max_connections, stale_timeout=300, timeout=10,
            connect_timeout=5, application_name="jct", autoconnect=True, **LIVENESS,
            # psycopg prepares a statement run five times on a connection; behind a pooler in
            # transaction mode (PgBouncer before 1.21) the next run may land on another server
            # connection, where it does not exist. JCT_DATABASE_PREPARED_STATEMENTS=false.
            **({} if prepared_statements else {"prepare_threshold": None}))

    # ── units of work ──────────────────────────────────────────────────────────────────────

    @contextmanager
    def connection(self) -> Iterator[Database]:
        """A pooled connection held for a unit of work (returned to the pool after it)."""
        try:
            opened = self._db.connect(reuse_if_open=True)
        except CONNECTION_ERRORS as exc:
            raise _unavailable(exc) from exc
        try:
            yield self
        except CONNECTION_ERRORS as exc:
            self.reset()
            raise _unavailable(exc) from exc
        finally:
            if opened and not self._db.is_closed():
                try:
                    self._db.close()
                except CONNECTION_ERRORS:
                    self.reset()

    @contextmanager
    def transaction(self) -> Iterator[Database]:
        """One transaction (a savepoint when nested); a lost server becomes ``Unavailable``."""
        try:
            with self._db.atomic():
                yield self
        except CONNECTION_ERRORS as exc:
            self.reset()
            raise _unavailable(exc) from exc

    # ── statements ─────────────────────────────────────────────────────────────────────────

    def execute(self, sql: str, params: Params = None) -> Any:
        """Run one statement; returns the psycopg cursor."""
        try:
            return self._db.execute_sql(sql, params)
        except CONNECTION_ERRORS as exc:
            if self._db.in_transaction():
                raise  # the transaction's boundary resets and translates it once
            self.reset()
            raise _unavailable(exc) from exc

    def one(self, sql: str, params: Params = None) -> tuple[Any, ...] | None:
        return self.execute(sql, params).fetchone()

    def all(self, sql: str, params: Params = None) -> list[tuple[Any, ...]]:
        return list(self.execute(sql, params).fetchall())

    def dicts(self, sql: str, params: Params = None) -> list[dict[str, Any]]:
        """Rows as ``{column: JSON-ready value}``."""
        cursor = self.execute(sql, params)
        names = [column.name for column in cursor.description]
        return [{name: json_value(value) for name, value in zip(names, row, strict=True)}
                for row in cursor.fetchall()]

    def ping(self, timeout_s: int = HEALTH_TIMEOUT_S) -> None:
        """One round trip on a connection of its own, bounded by ``timeout_s`` end to end;
        raises ``Unavailable`` when the server does not answer in time. Not a pooled
        connection: one that went silent would hold the probe for as long as TCP lets it."""
        conninfo = make_conninfo(
            self.url, **{**LIVENESS, "keepalives_idle": 1, "keepalives_interval": 1,
                         "tcp_user_timeout": timeout_s * 1000},
            connect_timeout=timeout_s, application_name="jct-health")
        try:
            # The statement timeout is set inside the probe's own transaction (not as a startup
            # option), which poolers such as PgBouncer in transaction mode also pass on.
            with psycopg.connect(conninfo, prepare_threshold=None) as conn:
                conn.execute("SELECT set_config('statement_timeout', %s, true)",
                             (str(timeout_s * 1000),))
                conn.execute("SELECT 1")
        except psycopg.Error as exc:
            raise _unavailable(exc) from exc

    # ── connection housekeeping ────────────────────────────────────────────────────────────

    def reset(self) -> None:
        """After the server went away: drop this thread's dead connection and the idle pooled
        ones. Other threads' connections fail and reset on their own."""
        with contextlib.suppress(*CONNECTION_ERRORS):  # close() forgets it even when it fails
            self._db.close()
        self._db.close_idle()

    def close(self) -> None:
        """Close every pooled connection (the runtime is done)."""
        with contextlib.suppress(*CONNECTION_ERRORS):
            self._db.close_all()

    @property
    def peewee(self) -> peewee.Database:
        """The underlying peewee database (for binding models in the schema check)."""
        return self._db
