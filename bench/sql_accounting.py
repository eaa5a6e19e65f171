"""SQL statements and transactions a system spends per task, read from the shared server.

- statements: ``pg_stat_statements`` calls in the system's database, all users but the bench's
  own observer role (BEGIN/COMMIT included: each is a round trip). Updated as each statement
  ends, so a snapshot is exact at once.
- write transactions: how far the server's transaction-id counter moved (only a transaction
  that writes takes an id; the observer only reads). Exact at once; counts the whole server,
  which runs one system at a time.
- transactions (read-only ones included): ``pg_stat_database.xact_commit + xact_rollback`` of
  the database, minus the observer's own. A backend publishes these counters at most once a
  second while busy and 10 s after it goes idle, so this figure is only read after waiting
  ``settle_s`` (the full run; the quick run leaves it out).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import psycopg

from bench.postgres_server import OBSERVER, SharedPostgres

_STATEMENTS = """
SELECT s.query, sum(s.calls)::bigint
  FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
 WHERE d.datname = %s AND s.userid <> (SELECT oid FROM pg_roles WHERE rolname = %s)
 GROUP BY s.query
"""
_XACTS = "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = %s"
_NEXT_XID = "SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint"


class Observer:
    """The bench's reads of a system's database (as the observer role), counted, so they can be
    taken out of that database's transaction count."""

    def __init__(self, server: SharedPostgres, database: str) -> None:
        self.database = database
        self._conn = psycopg.connect(server.url(database, OBSERVER), autocommit=True)
        self.transactions = 0

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        self.transactions += 1
        return self._conn.execute(sql, params).fetchall()

    def scalar(self, sql: str, *params: Any) -> Any:
        return self.query(sql, *params)[0][0]

    def close(self) -> None:
        self._conn.close()


@dataclass(frozen=True)
class SqlSnapshot:
    statements: dict[str, int]
    next_xid: int
    transactions: int  # observer's own already taken out
    at: float


class SqlAccountant:
    """Snapshots of one database's SQL counters; the stats queries run in ``postgres``."""

    def __init__(self, server: SharedPostgres, database: str, observer: Observer) -> None:
        self.database = database
        self.observer = observer
        self._stats = psycopg.connect(server.url("postgres", OBSERVER), autocommit=True)

    def snapshot(self) -> SqlSnapshot:
        rows = self._stats.execute(_STATEMENTS, (self.database, OBSERVER)).fetchall()
        (xid,) = self._stats.execute(_NEXT_XID).fetchone() or (0,)
        (xacts,) = self._stats.execute(_XACTS, (self.database,)).fetchone() or (0,)
        return SqlSnapshot(statements={str(q): int(c) for q, c in rows}, next_xid=int(xid),
                           transactions=int(xacts) - self.observer.transactions, at=time.monotonic())

    def settled_snapshot(self, settle_s: float) -> SqlSnapshot | None:
        """A snapshot whose transaction count includes every backend's last work: taken after
        ``settle_s`` (None when the plan skips it)."""
        if settle_s <= 0:
            return None
        time.sleep(settle_s)
        return self.snapshot()

    @staticmethod
    def per_task(before: SqlSnapshot, after: SqlSnapshot, tasks: int,
                 settled: SqlSnapshot | None = None, top: int = 12) -> dict[str, Any]:
        """Per-task figures for the window ``before``→``after`` (``settled``: ``after`` read
        again once the transaction counters are published)."""
        calls = {q: c - before.statements.get(q, 0) for q, c in after.statements.items()}
        calls = {q: c for q, c in calls.items() if c > 0}
        total = sum(calls.values())
        control = sum(c for q, c in calls.items()
                      if q.strip().upper().split(" ")[0] in ("BEGIN", "COMMIT", "ROLLBACK"))
        result: dict[str, Any] = {
            "tasks": tasks,
            "statements": round(total / tasks, 2),
            "statements_begin_commit": round(control / tasks, 2),
            "write_transactions": round((after.next_xid - before.next_xid) / tasks, 2),
            "transactions": None,
            "top_statements": [
                {"calls_per_task": round(c / tasks, 3), "query": " ".join(q.split())[:240]}
                for q, c in sorted(calls.items(), key=lambda item: -item[1])[:top]],
        }
        if settled is not None:
            result["transactions"] = round((settled.transactions - before.transactions) / tasks, 2)
        return result

    def close(self) -> None:
        self._stats.close()
