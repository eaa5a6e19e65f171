"""Rows written while an attempt runs: action invocations and artifacts."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from models.db import database
from models.tables import Artifact
from models.transitions import record_event


@dataclass(frozen=True)
class StoredBlob:
    """An object the store accepted, to be referenced by an ``artifacts`` row."""

    task_id: str
    job_id: str | None
    trace_id: str
    kind: str
    name: str
    uri: str
    size: int
    sha256: str
    content_type: str


def start_invocation(task_id: str, job_id: str, trace_id: str, *, step: int, action_name: str,
                     inputs_hash: str) -> str:
    invocation_id = str(uuid.uuid4())
    database.execute_sql(
        "INSERT INTO action_invocations (id, task_id, job_id, trace_id, step, action_name,"
        " inputs_hash, status) VALUES (%s, %s, %s, %s, %s, %s, %s, 'running')",
        (invocation_id, task_id, job_id, trace_id, step, action_name, inputs_hash),
    )
    return invocation_id


def finish_invocation(invocation_id: str, *, error: str | None, downstream_status: int | None,
                      result_artifact_id: str | None) -> None:
    database.execute_sql(
        "UPDATE action_invocations SET status = %s, error = %s, completed_at = now(),"
        " downstream_status = %s, result_artifact_id = %s WHERE id = %s",
        ("failed" if error else "ok", error, downstream_status, result_artifact_id, invocation_id),
    )


def insert_artifact(blob: StoredBlob) -> str:
    """Reference a stored blob; its ``artifact_stored`` event goes in the same transaction."""
    artifact_id = str(uuid.uuid4())
    with database.atomic():
        database.execute_sql(
            "INSERT INTO artifacts (id, task_id, job_id, trace_id, kind, name, uri, size, sha256,"
            " content_type) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (artifact_id, blob.task_id, blob.job_id, blob.trace_id, blob.kind, blob.name, blob.uri,
             blob.size, blob.sha256, blob.content_type),
        )
        record_event(blob.task_id, blob.trace_id, "artifact_stored", artifact_id=artifact_id,
                     kind=blob.kind, uri=blob.uri, size=blob.size)
    return artifact_id


def get_artifact(artifact_id: str) -> Artifact | None:
    return Artifact.get_or_none(Artifact.id == artifact_id)
