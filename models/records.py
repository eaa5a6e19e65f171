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


def insert_artifact(blob: StoredBlob, *, pending_path: str | None = None) -> str:
    """Reference a blob; its event goes in the same transaction. With ``pending_path`` the blob
    is still on local disk (the store refused it) and the row is ``pending``."""
    artifact_id = str(uuid.uuid4())
    with database.atomic():
        database.execute_sql(
            "INSERT INTO artifacts (id, task_id, job_id, trace_id, kind, name, uri, size, sha256,"
            " content_type, status, pending_path) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s,"
            " %s, %s)",
            (artifact_id, blob.task_id, blob.job_id, blob.trace_id, blob.kind, blob.name, blob.uri,
             blob.size, blob.sha256, blob.content_type, "pending" if pending_path else "stored",
             pending_path),
        )
        record_event(blob.task_id, blob.trace_id,
                     "artifact_pending" if pending_path else "artifact_stored",
                     artifact_id=artifact_id, kind=blob.kind, uri=blob.uri, size=blob.size,
                     pending_path=pending_path)
    return artifact_id


@dataclass(frozen=True)
class PendingArtifact:
    artifact_id: str
    task_id: str
    job_id: str | None
    trace_id: str
    kind: str
    uri: str
    content_type: str
    pending_path: str


def claim_pending_artifacts(path_prefix: str, limit: int = 20) -> list[PendingArtifact]:
    """Pending artifacts whose blob lies under ``path_prefix`` (this host's spool). Call inside
    a transaction: the rows stay locked (SKIP LOCKED for others) until it ends."""
    rows = database.execute_sql(
        "SELECT id, task_id, job_id, trace_id, kind, uri, content_type, pending_path FROM artifacts"
        " WHERE status = 'pending' AND pending_path LIKE %s ORDER BY created_at LIMIT %s"
        " FOR UPDATE SKIP LOCKED", (path_prefix.rstrip("/") + "/%", limit)).fetchall()
    return [PendingArtifact(str(r[0]), str(r[1]), str(r[2]) if r[2] else None, str(r[3]), r[4],
                            r[5], r[6], r[7]) for r in rows]


def mark_artifact_stored(pending: PendingArtifact) -> None:
    database.execute_sql(
        "UPDATE artifacts SET status = 'stored', pending_path = NULL WHERE id = %s",
        (pending.artifact_id,))
    record_event(pending.task_id, pending.trace_id, "artifact_stored",
                 artifact_id=pending.artifact_id, kind=pending.kind, uri=pending.uri, late=True)


def get_artifact(artifact_id: str) -> Artifact | None:
    return Artifact.get_or_none(Artifact.id == artifact_id)
