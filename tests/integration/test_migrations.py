"""Migrations on a fresh database: every table, its trace_id index, idempotence, checksums."""

from __future__ import annotations

import threading
from pathlib import Path

import psycopg
import pytest

from migrations.runner import MigrationChanged, apply_migrations
from tests.integration.conftest import create_database

TABLES = ("tasks", "jobs", "action_invocations", "artifacts", "task_events")


def test_fresh_database_gets_every_table_with_an_indexed_trace_id(pg_admin_url: str) -> None:
    url = create_database(pg_admin_url)
    assert apply_migrations(url) == ["0001_initial.sql", "0002_pending_artifacts.sql",
                                     "0003_dispatch_count.sql", "0004_artifact_upload_claim.sql",
                                     "0005_attempt_holder.sql", "0006_command_results.sql"]
    with psycopg.connect(url) as conn:
        for table in TABLES:
            columns = {r[0] for r in conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = %s", (table,))}
            assert "trace_id" in columns, table
            indexes = [r[0] for r in conn.execute(
                "SELECT indexdef FROM pg_indexes WHERE tablename = %s", (table,))]
            assert any("(trace_id" in d for d in indexes), (table, indexes)
        queued = conn.execute("SELECT indexdef FROM pg_indexes WHERE indexname = 'tasks_queued_idx'"
                              ).fetchone()
        assert queued is not None and "WHERE (status = 'queued'::text)" in queued[0]
        assert conn.execute("SELECT to_regclass('dramatiq.queue')").fetchone() != (None,)


def test_second_run_applies_nothing(pg_admin_url: str) -> None:
    url = create_database(pg_admin_url)
    apply_migrations(url)
    assert apply_migrations(url) == []


def test_a_changed_applied_migration_is_refused(pg_admin_url: str, migrations_dir: Path) -> None:
    url = create_database(pg_admin_url)
    apply_migrations(url, migrations_dir)
    first = next(migrations_dir.glob("0001_*.sql"))
    first.write_text(first.read_text() + "\n-- edited after the fact\n")
    with pytest.raises(MigrationChanged, match=r"0001_initial\.sql"):
        apply_migrations(url, migrations_dir)


def test_concurrent_runners_apply_each_migration_once(pg_admin_url: str) -> None:
    url = create_database(pg_admin_url)
    results: list[list[str]] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append(apply_migrations(url))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(len(r) for r in results) == [0, 0, 6]
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT count(*) FROM schema_migrations").fetchone() == (6,)
