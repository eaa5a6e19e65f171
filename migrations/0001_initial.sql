-- JCT schema, version 1: the system of record. Every table carries an indexed trace_id so that
-- "what happened to trace X" is one indexed query per table.

CREATE TABLE tasks (
    id               uuid PRIMARY KEY,
    trace_id         uuid NOT NULL,
    name             text,
    spec             jsonb NOT NULL,
    status           text NOT NULL CHECK (status IN ('queued', 'running', 'done', 'failed', 'cancelled')),
    priority         integer NOT NULL DEFAULT 0,
    attempts         integer NOT NULL DEFAULT 0,
    max_attempts     integer NOT NULL DEFAULT 1 CHECK (max_attempts >= 1),
    timeout_s        double precision,
    labels           jsonb NOT NULL DEFAULT '{}'::jsonb,
    error            text,
    idempotency_key  text UNIQUE,
    request_hash     text,
    run_after        timestamptz NOT NULL DEFAULT now(),
    dispatched_at    timestamptz,
    current_job_id   uuid,
    cancel_requested boolean NOT NULL DEFAULT false,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    started_at       timestamptz,
    finished_at      timestamptz
);
CREATE INDEX tasks_trace_id_idx ON tasks (trace_id);
CREATE INDEX tasks_created_idx ON tasks (created_at DESC, id DESC);
CREATE INDEX tasks_status_idx ON tasks (status, created_at DESC);
-- The dispatcher's and the claim's working set: only queued rows, ordered by when they are due.
CREATE INDEX tasks_queued_idx ON tasks (run_after, priority DESC) WHERE status = 'queued';

CREATE TABLE jobs (
    id               uuid PRIMARY KEY,
    task_id          uuid NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    trace_id         uuid NOT NULL,
    attempt          integer NOT NULL,
    status           text NOT NULL CHECK (status IN ('running', 'done', 'failed', 'lost', 'cancelled')),
    worker           text NOT NULL,
    lease_expires_at timestamptz,
    heartbeat_at     timestamptz,
    error            text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    started_at       timestamptz NOT NULL DEFAULT now(),
    finished_at      timestamptz,
    UNIQUE (task_id, attempt)
);
CREATE INDEX jobs_trace_id_idx ON jobs (trace_id);
CREATE INDEX jobs_running_lease_idx ON jobs (lease_expires_at) WHERE status = 'running';

ALTER TABLE tasks ADD CONSTRAINT tasks_current_job_fk
    FOREIGN KEY (current_job_id) REFERENCES jobs (id) DEFERRABLE INITIALLY DEFERRED;

CREATE TABLE artifacts (
    id           uuid PRIMARY KEY,
    task_id      uuid NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    job_id       uuid REFERENCES jobs (id) ON DELETE CASCADE,
    trace_id     uuid NOT NULL,
    kind         text NOT NULL,
    name         text NOT NULL,
    uri          text NOT NULL,
    size         bigint NOT NULL,
    sha256       text NOT NULL,
    content_type text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX artifacts_trace_id_idx ON artifacts (trace_id);
CREATE INDEX artifacts_task_id_idx ON artifacts (task_id);

CREATE TABLE action_invocations (
    id                 uuid PRIMARY KEY,
    task_id            uuid NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    job_id             uuid NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    trace_id           uuid NOT NULL,
    step               integer NOT NULL,
    action_name        text NOT NULL,
    inputs_hash        text NOT NULL,
    status             text NOT NULL CHECK (status IN ('running', 'ok', 'failed')),
    started_at         timestamptz NOT NULL DEFAULT now(),
    completed_at       timestamptz,
    result_artifact_id uuid REFERENCES artifacts (id),
    downstream_status  integer,
    error              text
);
CREATE INDEX action_invocations_trace_id_idx ON action_invocations (trace_id);
CREATE INDEX action_invocations_job_idx ON action_invocations (job_id, step);

CREATE TABLE task_events (
    id       bigserial PRIMARY KEY,
    task_id  uuid NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    trace_id uuid NOT NULL,
    ts       timestamptz NOT NULL DEFAULT clock_timestamp(),
    event    text NOT NULL,
    attrs    jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX task_events_trace_id_idx ON task_events (trace_id, ts);
CREATE INDEX task_events_task_idx ON task_events (task_id, ts);
