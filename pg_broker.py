"""The PostgreSQL broker (``dramatiq-postgres``) as the tower runs it: its connections commit
without waiting for the WAL flush, and its consumer takes and acknowledges a message in one
round trip each.

The broker's rows are wake-ups; the tower's own rows (``models/``) are the truth, written on
the runtime's database with synchronous commits. See ``pg_broker_pool`` for what a server crash
may cost the broker's state and why no task is lost by it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from dramatiq import Message
from dramatiq_postgres import PostgresBroker
from dramatiq_postgres.broker import QUERIES, PostgresConsumer
from dramatiq_postgres.utils import raise_connection_error
from psycopg_pool import ConnectionPool

from config import Settings
from models.db import with_liveness

# dramatiq-postgres's ACK, without its NOTIFY on ``dramatiq.<queue>.ack``: nothing listens
# there (the library's own listeners are the enqueue notifier and its results backend, which
# the tower does not use), and a notifying transaction costs PostgreSQL a queue entry and
# serializes with every other notifying commit.
_ACK = """
DELETE FROM dramatiq.queue WHERE message_id = %s AND queue_name = %s AND "state" = 'consumed'
"""


def pg_broker_pool(settings: Settings) -> ConnectionPool:
    """The PostgreSQL broker's connections: dramatiq-postgres's own pool settings (``make_pool``),
    and commits that do not wait for the WAL flush.

    Only the broker's own transactions run on this pool: a consumer taking a message, its ack,
    its heartbeat, and a re-send (the dispatcher's, a retry's). Each is a wake-up's state, not a
    task's: the tower's rows (written on the runtime's database with synchronous commits, the
    outbox enqueue among them) stay the truth. A server crash may forget the last fraction of a
    second of them: a take comes back as a queued message (its claim finds the task taken and
    acks it); an ack leaves the spent message marked taken (delivered again only if its
    consumer dies, and then its claim finds the task finished); a re-send goes missing (the
    dispatcher sees fewer wake-ups waiting than tasks due and sends again). Waiting for the
    flush put two more WAL flushes on every task's path (the take before its claim, the ack
    after its end). Behind a pooler in transaction mode
    (``JCT_DATABASE_PREPARED_STATEMENTS=false``) a session setting would leak to other clients'
    server connections, so there the commits stay synchronous."""
    assert settings.database_url is not None
    direct = settings.database_prepared_statements
    # As dramatiq_postgres.utils.make_pool builds it: opened on demand (none up front), at most
    # 16, each connection checked with a round trip as it is handed out; and room for one kept
    # ack connection per worker thread (OneTripConsumer) beside the consumer's and the
    # notifier's.
    return ConnectionPool(
        with_liveness(settings.database_url), min_size=0,
        max_size=max(16, settings.worker_threads + 8), open=True,
        check=ConnectionPool.check_connection,
        kwargs={"application_name": "dramatiq-postgres",
                **({} if direct else {"prepare_threshold": None})},
        configure=_commit_without_waiting_for_flush if direct else None)


def _commit_without_waiting_for_flush(conn: psycopg.Connection[Any]) -> None:
    conn.execute("SET synchronous_commit = off")
    conn.commit()


class TowerPostgresBroker(PostgresBroker):
    """``PostgresBroker`` whose consumers are ``OneTripConsumer``s."""

    def consume(self, queue_name: str, prefetch: int = 1, timeout: int = 30000) -> PostgresConsumer:
        return OneTripConsumer(broker=self, queue_name=queue_name, prefetch=prefetch,
                               timeout=timeout)


class OneTripConsumer(PostgresConsumer):
    """The library's consumer, with its take and its ack each one statement on its own (its
    implicit transaction) instead of BEGIN, the statement and COMMIT, and each worker thread
    acknowledging on a connection it keeps instead of checking one out of the pool (a check
    query and the library's retry wrapper) for every message: four round trips fewer a task.
    A failed ack raises ``ConnectionError``, which Dramatiq retries; the connection is dropped
    and the next ack takes a fresh one. Everything else (heartbeat, upkeep, requeue, nack) is
    the library's."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._ack_local = threading.local()
        self._ack_conns: set[psycopg.Connection[Any]] = set()
        self._ack_guard = threading.Lock()

    @raise_connection_error
    def claim(self, limit: int) -> None:
        conn = self.get_consume_conn()
        with _autocommit(conn):
            rows = conn.execute(QUERIES.CLAIM, (self.queue_name, limit, self.broker.worker_id)).fetchall()
        for (payload,) in rows:
            self.buffer.append(Message.decode(payload.encode("utf-8")))

    @raise_connection_error
    def ack(self, message: Message[Any]) -> None:
        conn = self._ack_connection()
        try:
            conn.execute(_ACK, (message.message_id, message.queue_name))
        except psycopg.OperationalError:
            self._drop_ack_connection(conn)
            raise
        self.in_processing.discard(message.message_id)
        self.wakeup.set()

    def close(self) -> None:
        super().close()
        with self._ack_guard:
            kept, self._ack_conns = self._ack_conns, set()
        for conn in kept:
            if not conn.closed:
                conn.autocommit = False  # back as the pool's other users expect it
            self.pool.putconn(conn)

    def _ack_connection(self) -> psycopg.Connection[Any]:
        conn: psycopg.Connection[Any] | None = getattr(self._ack_local, "conn", None)
        if conn is None or conn.closed:
            conn = self.pool.getconn()
            conn.autocommit = True  # its own: every ack is one statement on its own
            with self._ack_guard:
                self._ack_conns.add(conn)
            self._ack_local.conn = conn
        return conn

    def _drop_ack_connection(self, conn: psycopg.Connection[Any]) -> None:
        self._ack_local.conn = None
        with self._ack_guard:
            self._ack_conns.discard(conn)
        conn.close()
        self.pool.putconn(conn)  # a closed connection is discarded by the pool


@contextmanager
def _autocommit(conn: psycopg.Connection[Any]) -> Iterator[None]:
    """The idle connection in autocommit mode for one statement, then back as the library
    keeps it (its other statements use explicit transactions)."""
    conn.autocommit = True
    try:
        yield
    finally:
        if not conn.closed:
            conn.autocommit = False
