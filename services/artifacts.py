"""Storing attempt artifacts: upload the blob with its trace metadata, then reference it in a row.

When the object store refuses the attempt's log blob (S3 down), the blob is kept under
``$JCT_HOME/spool/<key>`` and its row is ``pending``; ``upload_pending`` stores it once S3 answers
again. No log is lost.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from config import get_settings
from errors import StorageError
from logging_setup import log_event
from models import records
from models.db import connection, database, retrying
from models.transitions import ClaimedAttempt
from storage.s3 import get_store, key_from_uri, object_key

logger = logging.getLogger(__name__)
T = TypeVar("T")


def bookkeeping(what: str, write: Callable[[], T]) -> T:
    """An attempt's own row writes ride out a database outage for as long as its lease lasts;
    past that the rescuer owns the task anyway."""
    return retrying(what, write, for_s=get_settings().lease_s)


def _metadata(trace_id: str, task_id: str, job_id: str | None, kind: str) -> dict[str, str]:
    return {"trace-id": trace_id, "task-id": task_id, "job-id": job_id or "", "kind": kind}


def _blob_row(attempt: ClaimedAttempt, *, kind: str, name: str, uri: str, data: bytes,
              content_type: str) -> records.StoredBlob:
    return records.StoredBlob(
        task_id=attempt.task_id, job_id=attempt.job_id, trace_id=attempt.trace_id, kind=kind,
        name=name, uri=uri, size=len(data), sha256=hashlib.sha256(data).hexdigest(),
        content_type=content_type)


def store_blob(attempt: ClaimedAttempt, *, kind: str, name: str, data: bytes,
               content_type: str) -> str:
    """Upload and reference one blob; returns the artifact id. Raises ``StorageError``."""
    settings = get_settings()
    key = object_key(attempt.trace_id, attempt.task_id, attempt.job_id, name)
    put = get_store(settings).put(key, data, content_type=content_type,
                                  metadata=_metadata(attempt.trace_id, attempt.task_id,
                                                     attempt.job_id, kind))
    row = _blob_row(attempt, kind=kind, name=name, uri=put.uri, data=data, content_type=content_type)
    artifact_id = bookkeeping(f"reference {name}", lambda: records.insert_artifact(row))
    log_event(logger, "artifact_stored", f"{kind} {name} stored at {put.uri}",
              artifact_id=artifact_id, kind=kind, uri=put.uri, size=put.size)
    return artifact_id


def spool_dir() -> Path:
    return get_settings().home / "spool"


def store_or_spool(attempt: ClaimedAttempt, *, kind: str, name: str, data: bytes,
                   content_type: str) -> str:
    """``store_blob``, or when the store refuses: keep the blob under ``spool_dir()`` with a
    ``pending`` row that ``upload_pending`` completes once S3 answers. Returns the artifact id."""
    try:
        return store_blob(attempt, kind=kind, name=name, data=data, content_type=content_type)
    except StorageError as exc:
        settings = get_settings()
        key = object_key(attempt.trace_id, attempt.task_id, attempt.job_id, name)
        path = spool_dir() / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        row = _blob_row(attempt, kind=kind, name=name, uri=f"s3://{settings.s3_bucket}/{key}",
                        data=data, content_type=content_type)
        artifact_id = bookkeeping(f"reference pending {name}",
                                  lambda: records.insert_artifact(row, pending_path=str(path)))
        log_event(logger, "artifact_pending",
                  f"{kind} {name} not uploaded ({exc}); kept at {path}, will upload when S3 answers",
                  level=logging.WARNING, artifact_id=artifact_id, pending_path=str(path))
        return artifact_id


def store_attempt_log(attempt: ClaimedAttempt, lines: list[str]) -> str:
    """The attempt's log lines as ``worker.log.jsonl`` (spooled if S3 refuses)."""
    return store_or_spool(attempt, kind="log", name="worker.log.jsonl",
                          data=("\n".join(lines) + "\n").encode(),
                          content_type="application/x-ndjson")


def upload_pending(limit: int = 20) -> int:
    """Upload this host's spooled blobs; returns how many were stored now."""
    settings = get_settings()
    store = get_store(settings)
    done: list[Path] = []
    with connection(), database.atomic():
        for pending in records.claim_pending_artifacts(str(spool_dir()), limit):
            path = Path(pending.pending_path)
            if not path.exists():
                continue
            key = key_from_uri(pending.uri, settings.s3_bucket)
            try:
                store.put(key, path.read_bytes(), content_type=pending.content_type,
                          metadata=_metadata(pending.trace_id, pending.task_id, pending.job_id,
                                             pending.kind))
            except StorageError:
                break  # still down; the next pass tries again
            records.mark_artifact_stored(pending)
            done.append(path)
            log_event(logger, "artifact_stored", f"pending {pending.kind} uploaded to {pending.uri}",
                      trace_id=pending.trace_id, task_id=pending.task_id,
                      artifact_id=pending.artifact_id, late=True)
    for path in done:  # only once the rows say "stored"
        path.unlink(missing_ok=True)
    return len(done)
