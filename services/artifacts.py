"""Storing attempt artifacts: upload the blob with its trace metadata, then reference it in a row.

When the object store refuses a blob (S3 down), it is kept under ``$JCT_HOME/spool/<key>`` and
its row is ``pending``; ``upload_pending`` stores it once S3 answers again. No log is lost.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

from errors import StorageError
from logging_setup import log_event
from models import artifacts as rows
from models.state_machine import Attempt
from models.trail import LogBlob
from private_files import write_private
from runtime import Runtime
from services.write_policy import within_lease
from states import Event
from storage.s3 import key_from_uri, object_key

logger = logging.getLogger(__name__)

# An uploader that took a pending blob and died leaves it marked; after this long it is due again.
UPLOAD_CLAIM_WINDOW_S = 300.0


def _metadata(trace_id: str, task_id: str, job_id: str | None, kind: str) -> dict[str, str]:
    return {"trace-id": trace_id, "task-id": task_id, "job-id": job_id or "", "kind": kind}


def _blob_row(attempt: Attempt, *, kind: str, name: str, uri: str, data: bytes,
              content_type: str) -> rows.StoredBlob:
    return rows.StoredBlob(
        task_id=attempt.task_id, job_id=attempt.id, trace_id=attempt.trace_id, kind=kind,
        name=name, uri=uri, size=len(data), sha256=hashlib.sha256(data).hexdigest(),
        content_type=content_type)


def store_blob(rt: Runtime, attempt: Attempt, *, kind: str, name: str, data: bytes,
               content_type: str) -> str:
    """Upload and reference one blob; returns the artifact id. Raises ``StorageError``."""
    key = object_key(attempt.trace_id, attempt.task_id, attempt.id, name)
    put = rt.store.put(key, data, content_type=content_type,
                       metadata=_metadata(attempt.trace_id, attempt.task_id, attempt.id, kind))
    row = _blob_row(attempt, kind=kind, name=name, uri=put.uri, data=data, content_type=content_type)
    artifact_id = within_lease(f"reference {name}", lambda: rows.insert_artifact(rt.db, row),
                               lease_s=rt.settings.lease_s)
    rt.metrics.upload(kind, "stored")
    log_event(logger, str(Event.ARTIFACT_STORED), f"{kind} {name} stored at {put.uri}",
              artifact_id=artifact_id, kind=kind, uri=put.uri, size=put.size)
    return artifact_id


def spool_dir(rt: Runtime) -> Path:
    return rt.settings.home / "spool"


def store_or_spool(rt: Runtime, attempt: Attempt, *, kind: str, name: str, data: bytes,
                   content_type: str) -> str:
    """``store_blob``, or when the store refuses: keep the blob under ``spool_dir()`` with a
    ``pending`` row that ``upload_pending`` completes once S3 answers. Returns the artifact id."""
    try:
        return store_blob(rt, attempt, kind=kind, name=name, data=data, content_type=content_type)
    except StorageError as exc:
        key = object_key(attempt.trace_id, attempt.task_id, attempt.id, name)
        path = _spool(rt, key, data)
        row = _blob_row(attempt, kind=kind, name=name, uri=f"s3://{rt.settings.s3_bucket}/{key}",
                        data=data, content_type=content_type)
        artifact_id = within_lease(
            f"reference pending {name}",
            lambda: rows.insert_artifact(rt.db, row, pending_path=str(path)),
            lease_s=rt.settings.lease_s)
        rt.metrics.upload(kind, "spooled")
        log_event(logger, str(Event.ARTIFACT_PENDING),
                  f"{kind} {name} not uploaded ({exc}); kept at {path}, will upload when S3 answers",
                  level=logging.WARNING, artifact_id=artifact_id, pending_path=str(path))
        return artifact_id


def put_attempt_log(rt: Runtime, attempt: Attempt, lines: list[str]) -> LogBlob:
    """The attempt's log lines as ``worker.log.jsonl``, uploaded (or spooled if S3 refuses); its
    row is written with the attempt's end (``models.trail``)."""
    name, data = "worker.log.jsonl", ("\n".join(lines) + "\n").encode()
    content_type = "application/x-ndjson"
    key = object_key(attempt.trace_id, attempt.task_id, attempt.id, name)
    try:
        put = rt.store.put(key, data, content_type=content_type,
                           metadata=_metadata(attempt.trace_id, attempt.task_id, attempt.id, "log"))
    except StorageError as exc:
        path = _spool(rt, key, data)
        row = _blob_row(attempt, kind="log", name=name, uri=f"s3://{rt.settings.s3_bucket}/{key}",
                        data=data, content_type=content_type)
        rt.metrics.upload("log", "spooled")
        log_event(logger, str(Event.ARTIFACT_PENDING), f"log {name} not uploaded ({exc}); kept "
                  f"at {path}, will upload when S3 answers", level=logging.WARNING,
                  pending_path=str(path))
        return LogBlob(row, pending_path=str(path))
    blob = LogBlob(_blob_row(attempt, kind="log", name=name, uri=put.uri, data=data,
                             content_type=content_type))
    rt.metrics.upload("log", "stored")
    log_event(logger, str(Event.ARTIFACT_STORED), f"log {name} stored at {put.uri}",
              artifact_id=blob.id, kind="log", uri=put.uri, size=put.size)
    return blob


def _spool(rt: Runtime, key: str, data: bytes) -> Path:
    path = spool_dir(rt) / key
    write_private(path, data)
    return path


def upload_pending(rt: Runtime, limit: int = 20) -> int:
    """Upload this host's spooled blobs; returns how many were stored now.

    Three steps so that no transaction is open across a network call: take (and mark) the
    rows in one short transaction, upload with none open, then mark each stored in its own.
    """
    settings = rt.settings
    with rt.db.connection():
        taken = rows.claim_pending_artifacts(rt.db, str(spool_dir(rt)),
                                             window_s=UPLOAD_CLAIM_WINDOW_S, limit=limit)
    stored = 0
    for index, pending in enumerate(taken):
        path = Path(pending.pending_path)
        if not path.exists():
            continue
        try:
            rt.store.put(key_from_uri(pending.uri, settings.s3_bucket), path.read_bytes(),
                         content_type=pending.content_type,
                         metadata=_metadata(pending.trace_id, pending.task_id, pending.job_id,
                                            pending.kind))
        except StorageError:
            rt.metrics.upload(pending.kind, "late_failed")
            # Still down: give the rest back for the next pass.
            with rt.db.connection():
                rows.release_pending_artifacts(rt.db, [p.artifact_id for p in taken[index:]])
            break
        with rt.db.connection():
            rows.mark_artifact_stored(rt.db, pending)
        path.unlink(missing_ok=True)  # only once the row says "stored"
        stored += 1
        rt.metrics.upload(pending.kind, "late_stored")
        log_event(logger, str(Event.ARTIFACT_STORED), f"pending {pending.kind} uploaded to {pending.uri}",
                  trace_id=pending.trace_id, task_id=pending.task_id,
                  artifact_id=pending.artifact_id, late=True)
    return stored
