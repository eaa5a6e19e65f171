"""Artifact rows: the reference from a task's attempt to a blob in the object store (or, while
the store refuses it, on the worker's disk: ``pending``)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from models.db import Database
from models.events import record_event
from states import ArtifactStatus, Event


@dataclass(frozen=True)
class StoredBlob:
    """An object the store accepted (or will), to be referenced by an ``artifacts`` row."""

    task_id: str
    job_id: str | None
    trace_id: str
    kind: str
    name: str
    uri: str
    size: int
    sha256: str
    content_type: str


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


_INSERT = """
INSERT INTO artifacts (id, task_id, job_id, trace_id, kind, name, uri, size, sha256, content_type,
                       status, pending_path)
VALUES (%(id)s, %(task_id)s, %(job_id)s, %(trace_id)s, %(kind)s, %(name)s, %(uri)s, %(size)s,
        %(sha256)s, %(content_type)s, %(status)s, %(pending_path)s)
"""


def insert_artifact(db: Database, blob: StoredBlob, *, pending_path: str | None = None) -> str:
    """Reference a blob; its event goes in the same transaction. With ``pending_path`` the blob
    is still on local disk (the store refused it) and the row is ``pending``."""
    artifact_id = str(uuid.uuid4())
    status = ArtifactStatus.PENDING if pending_path else ArtifactStatus.STORED
    with db.transaction():
        db.execute(_INSERT, {"id": artifact_id, "task_id": blob.task_id, "job_id": blob.job_id,
                             "trace_id": blob.trace_id, "kind": blob.kind, "name": blob.name,
                             "uri": blob.uri, "size": blob.size, "sha256": blob.sha256,
                             "content_type": blob.content_type, "status": str(status),
                             "pending_path": pending_path})
        record_event(db, blob.task_id, blob.trace_id,
                     Event.ARTIFACT_PENDING if pending_path else Event.ARTIFACT_STORED,
                     artifact_id=artifact_id, kind=blob.kind, uri=blob.uri, size=blob.size,
                     pending_path=pending_path)
    return artifact_id


_CLAIM_PENDING = """
UPDATE artifacts a SET upload_claimed_at = now()
  FROM (SELECT id FROM artifacts
         WHERE status = 'pending' AND pending_path LIKE %(prefix)s
           AND (upload_claimed_at IS NULL
                OR upload_claimed_at < now() - make_interval(secs => %(window_s)s))
         ORDER BY created_at LIMIT %(limit)s
           FOR UPDATE SKIP LOCKED) due
 WHERE a.id = due.id
RETURNING a.id, a.task_id, a.job_id, a.trace_id, a.kind, a.uri, a.content_type, a.pending_path
"""


def claim_pending_artifacts(db: Database, path_prefix: str, *, window_s: float,
                            limit: int = 20) -> list[PendingArtifact]:
    """Take (mark, in one short transaction) pending artifacts whose blob lies under
    ``path_prefix`` (this host's spool). Nobody else takes them for ``window_s``."""
    with db.transaction():
        rows = db.all(_CLAIM_PENDING, {"prefix": path_prefix.rstrip("/") + "/%",
                                       "window_s": window_s, "limit": limit})
    return [PendingArtifact(str(r[0]), str(r[1]), str(r[2]) if r[2] else None, str(r[3]), r[4],
                            r[5], r[6], r[7]) for r in rows]


def release_pending_artifacts(db: Database, artifact_ids: list[str]) -> None:
    """The upload did not happen (the store is still down): due again next pass."""
    if artifact_ids:
        db.execute("UPDATE artifacts SET upload_claimed_at = NULL WHERE id = ANY(%(ids)b::uuid[])",
                   {"ids": artifact_ids})


def mark_artifact_stored(db: Database, pending: PendingArtifact) -> None:
    with db.transaction():
        db.execute("UPDATE artifacts SET status = 'stored', pending_path = NULL,"
                   " upload_claimed_at = NULL WHERE id = %(id)s AND status = 'pending'",
                   {"id": pending.artifact_id})
        record_event(db, pending.task_id, pending.trace_id, Event.ARTIFACT_STORED,
                     artifact_id=pending.artifact_id, kind=pending.kind, uri=pending.uri, late=True)


ARTIFACT_COLUMNS = ("id, task_id, job_id, trace_id, kind, name, uri, size, sha256, content_type,"
                    " status, pending_path, created_at")


def get_artifact(db: Database, artifact_id: str) -> dict[str, Any] | None:
    rows = db.dicts(f"SELECT {ARTIFACT_COLUMNS} FROM artifacts WHERE id = %(id)s",
                    {"id": artifact_id})
    return rows[0] if rows else None
