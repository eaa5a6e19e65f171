"""The five tables as peewee models: a typed statement of the schema the migrations build.

The migrations are the schema; these declarations say what the code expects of it, and
``tests/integration/test_schema.py`` compares them with a freshly migrated database (column
names, types, nullability, and the status CHECK constraints against ``states``). The
data layer's statements are plain SQL in the modules beside this one.
"""

from __future__ import annotations

import peewee as pw
from playhouse.postgres_ext import BinaryJSONField, DateTimeTZField


class BaseModel(pw.Model):
    class Meta:
        database = None  # never bound: nothing queries through these models


class Task(BaseModel):
    id = pw.UUIDField(primary_key=True)
    trace_id = pw.UUIDField(index=True)
    name = pw.TextField(null=True)
    spec = BinaryJSONField()
    status = pw.TextField()
    priority = pw.IntegerField(default=0)
    attempts = pw.IntegerField(default=0)
    max_attempts = pw.IntegerField(default=1)
    timeout_s = pw.FloatField(null=True)
    labels = BinaryJSONField(default=dict)
    error = pw.TextField(null=True)
    idempotency_key = pw.TextField(null=True, unique=True)
    request_hash = pw.TextField(null=True)
    run_after = DateTimeTZField()
    dispatched_at = DateTimeTZField(null=True)
    dispatch_count = pw.IntegerField(default=0)
    current_job_id = pw.UUIDField(null=True)
    cancel_requested = pw.BooleanField(default=False)
    created_at = DateTimeTZField()
    updated_at = DateTimeTZField()
    started_at = DateTimeTZField(null=True)
    finished_at = DateTimeTZField(null=True)

    class Meta:
        table_name = "tasks"


class Attempt(BaseModel):
    """One attempt of a task (the contract calls the table ``jobs``)."""

    id = pw.UUIDField(primary_key=True)
    task_id = pw.UUIDField()
    trace_id = pw.UUIDField(index=True)
    attempt = pw.IntegerField()
    status = pw.TextField()
    worker = pw.TextField()
    worker_host = pw.TextField(null=True)
    worker_pid = pw.IntegerField(null=True)
    worker_boot_id = pw.TextField(null=True)
    worker_started_at = pw.FloatField(null=True)
    lease_expires_at = DateTimeTZField(null=True)
    heartbeat_at = DateTimeTZField(null=True)
    error = pw.TextField(null=True)
    created_at = DateTimeTZField()
    updated_at = DateTimeTZField()
    started_at = DateTimeTZField()
    finished_at = DateTimeTZField(null=True)

    class Meta:
        table_name = "jobs"


class Artifact(BaseModel):
    id = pw.UUIDField(primary_key=True)
    task_id = pw.UUIDField()
    job_id = pw.UUIDField(null=True)
    trace_id = pw.UUIDField(index=True)
    kind = pw.TextField()
    name = pw.TextField()
    uri = pw.TextField()
    size = pw.BigIntegerField()
    sha256 = pw.TextField()
    content_type = pw.TextField()
    status = pw.TextField(default="stored")
    pending_path = pw.TextField(null=True)
    upload_claimed_at = DateTimeTZField(null=True)
    created_at = DateTimeTZField()

    class Meta:
        table_name = "artifacts"


class ActionInvocation(BaseModel):
    id = pw.UUIDField(primary_key=True)
    task_id = pw.UUIDField()
    job_id = pw.UUIDField()
    trace_id = pw.UUIDField(index=True)
    step = pw.IntegerField()
    action_name = pw.TextField()
    inputs_hash = pw.TextField()
    status = pw.TextField()
    started_at = DateTimeTZField()
    completed_at = DateTimeTZField(null=True)
    result_artifact_id = pw.UUIDField(null=True)
    downstream_status = pw.IntegerField(null=True)
    error = pw.TextField(null=True)
    exit_code = pw.IntegerField(null=True)
    signal = pw.IntegerField(null=True)
    wall_s = pw.FloatField(null=True)
    cpu_s = pw.FloatField(null=True)
    max_rss_bytes = pw.BigIntegerField(null=True)
    output_tail = pw.TextField(null=True)

    class Meta:
        table_name = "action_invocations"


class TaskEvent(BaseModel):
    id = pw.BigAutoField(primary_key=True)
    task_id = pw.UUIDField()
    trace_id = pw.UUIDField(index=True)
    ts = DateTimeTZField()
    event = pw.TextField()
    attrs = BinaryJSONField(default=dict)

    class Meta:
        table_name = "task_events"


MODELS: tuple[type[BaseModel], ...] = (Task, Attempt, Artifact, ActionInvocation, TaskEvent)
