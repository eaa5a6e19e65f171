"""What an attempt leaves behind — its steps (``action_invocations``), its log blob's row
(``artifacts``) and the events that say so — written in the same statement as the attempt's
end (``models.state_machine``), so that ending an attempt is one round trip and the trail and
the outcome commit together or not at all.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from psycopg.types.json import Jsonb

from models.artifacts import StoredBlob
from models.invocations import UPSERT_CTE, Invocation, upsert_params
from states import ArtifactStatus, Event


@dataclass(frozen=True)
class LogBlob:
    """The attempt's log blob: stored in the object store, or kept on this host's disk
    (``pending_path``) until the store takes it."""

    blob: StoredBlob
    pending_path: str | None = None
    id: str = field(default_factory=lambda: str(uuid.uuid4()))

    @property
    def event(self) -> Event:
        return Event.ARTIFACT_PENDING if self.pending_path else Event.ARTIFACT_STORED


@dataclass(frozen=True)
class Trail:
    invocations: tuple[Invocation, ...] = ()
    log: LogBlob | None = None


NOTHING = Trail()

_ARTIFACT_CTE = """
log_artifact AS (
    INSERT INTO artifacts (id, task_id, job_id, trace_id, kind, name, uri, size, sha256,
                           content_type, status, pending_path)
    SELECT %(log_id)s, %(task_id)s, %(attempt_id)s, %(trace_id)s, %(log_kind)s, %(log_name)s,
           %(log_uri)s, %(log_size)s, %(log_sha256)s, %(log_content_type)s, %(log_status)s,
           %(log_pending_path)s
     WHERE %(has_log)s AND EXISTS (SELECT FROM {guard}))"""

_EVENTS_CTE = """
events AS (
    INSERT INTO task_events (task_id, trace_id, event, attrs)
    SELECT %(task_id)s, %(trace_id)s, e.doc->>0, e.doc->1
      FROM jsonb_array_elements(%(events)s) WITH ORDINALITY AS e(doc, n)
     WHERE EXISTS (SELECT FROM {guard})
     ORDER BY e.n)"""


def ctes(guard: str) -> str:
    """The trail's CTEs, each writing only when CTE ``guard`` has a row."""
    return ",".join(part.format(guard=guard) for part in (UPSERT_CTE, _ARTIFACT_CTE, _EVENTS_CTE))


def params(trail: Trail, events: list[tuple[Event, dict[str, Any]]]) -> dict[str, Any]:
    """Parameters for ``ctes``; ``events`` follow the log's own event, in this order."""
    log = trail.log
    blob = log.blob if log else None
    all_events = ([(log.event, {"artifact_id": log.id, "kind": blob.kind, "uri": blob.uri,
                                "size": blob.size, "pending_path": log.pending_path})]
                  if log and blob else []) + events
    return {
        **upsert_params(list(trail.invocations)),
        "has_log": log is not None, "log_id": log.id if log else None,
        "log_kind": blob.kind if blob else None, "log_name": blob.name if blob else None,
        "log_uri": blob.uri if blob else None, "log_size": blob.size if blob else None,
        "log_sha256": blob.sha256 if blob else None,
        "log_content_type": blob.content_type if blob else None,
        "log_status": str(ArtifactStatus.PENDING if log and log.pending_path
                          else ArtifactStatus.STORED),
        "log_pending_path": log.pending_path if log else None,
        "events": Jsonb([(str(event), attrs) for event, attrs in all_events]),
    }
