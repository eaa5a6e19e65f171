"""The artifact store against a real S3 server (embedded rclone)."""

from __future__ import annotations

from runtime import Runtime
from storage.s3 import metadata_value, object_key


def test_upload_with_trace_metadata_reads_back(rt: Runtime) -> None:
    store = rt.store
    key = object_key("4bf92f35-77b3-4da6-a3ce-929d0e0e4736", "task-1", "job-1", "worker.log.jsonl")
    put = store.put(key, b'{"a": 1}\n', content_type="application/x-ndjson",
                    metadata={"trace-id": "4bf92f35-77b3-4da6-a3ce-929d0e0e4736", "task-id": "task-1"})
    assert put.uri == f"s3://{rt.settings.s3_bucket}/{key}"
    assert put.size == 9 and len(put.sha256) == 64
    head = store.head(key)
    metadata = head["Metadata"]
    assert isinstance(metadata, dict)
    assert metadata_value(metadata, "trace-id") == "4bf92f35-77b3-4da6-a3ce-929d0e0e4736"
    assert metadata_value(metadata, "TASK-ID") == "task-1"
    assert head["ContentType"] == "application/x-ndjson"
    assert b"".join(store.stream(key)) == b'{"a": 1}\n'
