"""The schema stated once: a freshly migrated database has exactly the columns (names, types,
nullability) that ``models.schema`` declares, and the status CHECK constraints allow exactly
the statuses ``states`` names."""

from __future__ import annotations

import re
from collections.abc import Iterator
from enum import StrEnum

import peewee as pw
import psycopg
import pytest
from playhouse.postgres_ext import BinaryJSONField, DateTimeTZField

from migrations.runner import apply_migrations
from models.schema import MODELS, BaseModel
from states import ArtifactStatus, AttemptStatus, InvocationStatus, TaskStatus
from tests.integration.conftest import create_database

# peewee field → information_schema.columns.data_type
PG_TYPES: dict[type[pw.Field], str] = {
    pw.UUIDField: "uuid", pw.TextField: "text", pw.IntegerField: "integer",
    pw.BigIntegerField: "bigint", pw.BigAutoField: "bigint", pw.FloatField: "double precision",
    pw.BooleanField: "boolean", BinaryJSONField: "jsonb",
    DateTimeTZField: "timestamp with time zone",
}


def _declared(model: type[BaseModel]) -> dict[str, tuple[str, bool]]:
    """``{column: (type, nullable)}`` as the model declares it."""
    columns = {}
    for field in model._meta.sorted_fields:
        kind = next(pg for cls, pg in PG_TYPES.items() if type(field) is cls)
        columns[field.column_name] = (kind, bool(field.null))
    return columns


@pytest.fixture(scope="module")
def migrated(pg_admin_url: str) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    url = create_database(pg_admin_url)
    apply_migrations(url)
    with psycopg.connect(url) as conn:
        yield conn


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m._meta.table_name)
def test_every_table_matches_its_model(migrated: psycopg.Connection[tuple[object, ...]],
                                       model: type[BaseModel]) -> None:
    rows = migrated.execute(
        "SELECT column_name, data_type, is_nullable = 'YES' FROM information_schema.columns"
        " WHERE table_schema = 'public' AND table_name = %s", (model._meta.table_name,)).fetchall()
    actual = {str(name): (str(kind), bool(nullable)) for name, kind, nullable in rows}
    assert actual == _declared(model)


@pytest.mark.parametrize(("table", "states"), [
    ("tasks", TaskStatus), ("jobs", AttemptStatus), ("action_invocations", InvocationStatus),
    ("artifacts", ArtifactStatus)])
def test_status_checks_allow_exactly_the_named_states(
        migrated: psycopg.Connection[tuple[object, ...]], table: str, states: type[StrEnum]) -> None:
    (definition,) = migrated.execute(
        "SELECT pg_get_constraintdef(c.oid) FROM pg_constraint c"
        " JOIN pg_class t ON t.oid = c.conrelid"
        " WHERE t.relname = %s AND c.contype = 'c' AND pg_get_constraintdef(c.oid) LIKE '%%status%%'",
        (table,)).fetchone() or ("",)
    allowed = set(re.findall(r"'([a-z_]+)'::text", str(definition)))
    assert allowed == {str(state) for state in states}
