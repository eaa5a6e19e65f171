"""The integration tier: real PostgreSQL (embedded, or JCT_TEST_DATABASE_URL), a real S3 server
(embedded rclone), RabbitMQ on this machine."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlparse

import psycopg
import pytest
from psycopg import sql

from config import load_settings
from migrations.runner import apply_migrations
from runtime import Runtime, build_runtime
from storage.embedded import EmbeddedS3, start_embedded_s3

TABLES = ("task_events", "action_invocations", "artifacts", "jobs", "tasks")


@pytest.fixture(scope="session")
def pg_admin_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A server to create test databases on: JCT_TEST_DATABASE_URL, else embedded PostgreSQL."""
    given = os.environ.get("JCT_TEST_DATABASE_URL")
    if given:
        return given
    from models.embedded_postgres import start_embedded_postgres

    url = start_embedded_postgres(tmp_path_factory.mktemp("pg") / "pgdata", cleanup_mode="delete")
    return with_database(url, "postgres")


def with_database(url: str, name: str) -> str:
    """The same server URL (TCP or ``?host=/socket/dir``) naming another database."""
    return urlparse(url)._replace(path=f"/{name}").geturl()


def create_database(admin_url: str) -> str:
    name = f"jct_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return with_database(admin_url, name)


@pytest.fixture(scope="session")
def database_url(pg_admin_url: str) -> str:
    """One migrated database for the session."""
    url = create_database(pg_admin_url)
    apply_migrations(url)
    return url


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedS3]:
    home = tmp_path_factory.mktemp("s3")
    server = start_embedded_s3(home / "objects", home / "rclone.log")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def base_env(database_url: str, s3_server: EmbeddedS3, tmp_path_factory: pytest.TempPathFactory,
             ) -> dict[str, str]:
    home = tmp_path_factory.mktemp("home")
    return {"JCT_HOME": str(home), "JCT_DATABASE_URL": database_url,
            "JCT_S3_ENDPOINT": s3_server.endpoint, "JCT_S3_ACCESS_KEY": s3_server.access_key,
            "JCT_S3_SECRET_KEY": s3_server.secret_key, "JCT_S3_BUCKET": "jct-test",
            "JCT_QUEUE": f"jct_it_{uuid.uuid4().hex[:8]}", "JCT_LOG_FILE": str(home / "jct.jsonl"),
            # the downstream test server is on loopback, which '*' does not cover
            "JCT_HTTP_ALLOWED_HOSTS": "127.0.0.1"}


@pytest.fixture
def rt(base_env: dict[str, str]) -> Iterator[Runtime]:
    """A worker's runtime on the PostgreSQL broker (JSON logging set up as a worker process
    does at boot), over emptied tables and an existing bucket."""
    current = build_runtime("worker", load_settings(base_env))
    with current.db.connection():
        current.db.execute("TRUNCATE " + ", ".join(TABLES) + " CASCADE")
    current.store.ensure_bucket()
    yield current
    current.close()


@pytest.fixture
def runtime_with(rt: Runtime, base_env: dict[str, str]) -> Iterator[Callable[..., Runtime]]:
    """``runtime_with(JCT_X=…)``: another runtime of the same process (sharing ``rt``'s
    attempt log collector) whose settings differ, e.g. a broker or S3 that is down."""
    made: list[Runtime] = []

    def make(**env: str) -> Runtime:
        other = Runtime(load_settings({**base_env, **env}), component="worker",
                        attempt_logs=rt.attempt_logs)
        made.append(other)
        return other

    yield make
    for other in made:
        other.close()


@pytest.fixture
def migrations_dir(tmp_path: Path) -> Path:
    from migrations.runner import MIGRATIONS_DIR

    target = tmp_path / "migrations"
    target.mkdir()
    for path in MIGRATIONS_DIR.glob("*.sql"):
        (target / path.name).write_text(path.read_text())
    return target
