"""Storing attempt artifacts: upload the blob with its trace metadata, then reference it in a row.

A blob the store refuses is kept under ``$JCT_HOME/spool/<key>`` so nothing is lost; the event
``artifact_upload_failed`` names the file.
"""

from __future__ import annotations

import logging

from config import get_settings
from errors import StorageError
from logging_setup import log_event
from models import records
from models.transitions import ClaimedAttempt, record_event
from storage.s3 import get_store, object_key

logger = logging.getLogger(__name__)


def store_blob(attempt: ClaimedAttempt, *, kind: str, name: str, data: bytes,
               content_type: str) -> str:
    """Upload and reference one blob; returns the artifact id. Raises ``StorageError``."""
    settings = get_settings()
    key = object_key(attempt.trace_id, attempt.task_id, attempt.job_id, name)
    put = get_store(settings).put(key, data, content_type=content_type,
                                  metadata={"trace-id": attempt.trace_id, "task-id": attempt.task_id,
                                            "job-id": attempt.job_id, "kind": kind})
    artifact_id = records.insert_artifact(records.StoredBlob(
        task_id=attempt.task_id, job_id=attempt.job_id, trace_id=attempt.trace_id, kind=kind,
        name=name, uri=put.uri, size=put.size, sha256=put.sha256, content_type=content_type))
    log_event(logger, "artifact_stored", f"{kind} {name} stored at {put.uri}",
              artifact_id=artifact_id, kind=kind, uri=put.uri, size=put.size)
    return artifact_id


def store_attempt_log(attempt: ClaimedAttempt, lines: list[str]) -> str | None:
    """The attempt's log lines as ``worker.log.jsonl``; spooled locally if the store refuses."""
    data = ("\n".join(lines) + "\n").encode()
    try:
        return store_blob(attempt, kind="log", name="worker.log.jsonl", data=data,
                          content_type="application/x-ndjson")
    except StorageError as exc:
        spool = get_settings().home / "spool" / object_key(
            attempt.trace_id, attempt.task_id, attempt.job_id, "worker.log.jsonl")
        spool.parent.mkdir(parents=True, exist_ok=True)
        spool.write_bytes(data)
        record_event(attempt.task_id, attempt.trace_id, "artifact_upload_failed",
                     job_id=attempt.job_id, error=str(exc)[:500], spooled_to=str(spool))
        log_event(logger, "artifact_upload_failed",
                  f"log blob not uploaded, kept at {spool}: {exc}", level=logging.ERROR,
                  spooled_to=str(spool))
        return None
