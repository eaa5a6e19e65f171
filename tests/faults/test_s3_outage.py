"""Drill: the S3 server stops while a task runs, and comes back later."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from drills.s3 import DrillS3
from drills.stack import running_job
from harness.stack import Stack
from harness.wait import wait_until
from storage.s3 import key_from_uri, metadata_value
from tests.faults.conftest import StartStack, enqueue, events_of, sleep_spec, wait_log_event


def test_a_log_blob_refused_while_s3_is_down_is_uploaded_when_it_returns(
        drill_stack: StartStack, tmp_path: Path) -> None:
    """With the object store stopped during a ``sleep`` task, the task still completes; its log
    blob is kept on the worker's disk and its artifact row is ``pending``. When S3 answers
    again (same endpoint, same credentials) the uploader stores it: the row becomes
    ``stored``, the object exists under ``<trace_id>/<task_id>/<job_id>/`` with the trace
    metadata, and holds the attempt's log. No log is lost."""
    s3 = DrillS3(objects_dir=tmp_path / "objects", log_file=tmp_path / "rclone.log")
    s3.start()
    try:
        stack = drill_stack(**s3.env())
        task_id, trace_id = enqueue(stack, sleep_spec(3, name="s3-outage"))
        job_id, _ = running_job(stack, task_id)
        s3.stop()

        task = stack.wait_status(task_id, timeout=60)
        assert task["status"] == "done", task
        (log,) = task["artifacts"]
        assert (log["kind"], log["status"], log["job_id"]) == ("log", "pending", job_id)
        assert Path(log["pending_path"]).is_file()
        assert "artifact_pending" in events_of(task)
        wait_log_event(stack, "artifact_pending", task_id=task_id)

        s3.start()  # same port, same keys, same objects directory
        stored = wait_until(lambda: _stored(stack, task_id), timeout=30, interval=0.2,
                            what="the pending log blob uploaded")
        assert stored["pending_path"] is None
        assert not Path(log["pending_path"]).exists(), "the spooled copy is removed once stored"
        key = key_from_uri(stored["uri"], "jct-artifacts")
        assert key == f"{trace_id}/{task_id}/{job_id}/worker.log.jsonl"
        head = _client(s3).head_object(Bucket="jct-artifacts", Key=key)
        assert metadata_value(head["Metadata"], "trace-id") == trace_id
        assert metadata_value(head["Metadata"], "task-id") == task_id
        body = _client(s3).get_object(Bucket="jct-artifacts", Key=key)["Body"].read()
        assert len(body) == stored["size"] and b'"task_claimed"' in body
        assert [e for e in stack.get(f"/tasks/{task_id}").json()["events"]
                if e["event"] == "artifact_stored"][-1]["attrs"]["late"] is True
    finally:
        s3.stop()


def _stored(stack: Stack, task_id: str) -> dict[str, Any] | None:
    (log,) = stack.get(f"/tasks/{task_id}").json()["artifacts"]
    return log if log["status"] == "stored" else None


def _client(s3: DrillS3) -> Any:
    return boto3.session.Session().client(
        "s3", endpoint_url=s3.endpoint, aws_access_key_id=s3.access_key,
        aws_secret_access_key=s3.secret_key, region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}))
