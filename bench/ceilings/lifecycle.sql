-- pg_ceiling: every row JCT writes for one echo task, with JCT's statements and transaction
-- boundaries (models/transitions.py, models/records.py), run by pgbench -M prepared. Left out:
-- the broker's own message (not JCT's trail), the read-only cancel probe and the heartbeat.
-- Ids JCT makes in Python are made by gen_random_uuid() inside the same statements.

-- enqueue: create_tasks (task + task_enqueued, one transaction)
BEGIN;
INSERT INTO tasks (id, trace_id, name, spec, status, priority, max_attempts, timeout_s, labels, idempotency_key, request_hash) VALUES (gen_random_uuid(), gen_random_uuid(), NULL, '{"name": null, "steps": [{"action": "echo", "params": {"message": "bench"}}], "max_attempts": 3, "timeout_s": null, "priority": 0, "labels": {}}', 'queued', 0, 3, NULL, '{}', NULL, NULL) RETURNING id AS task_id, trace_id \gset
INSERT INTO task_events (task_id, trace_id, event, attrs) VALUES (:task_id, :trace_id, 'task_enqueued', '{"name": null, "steps": ["echo"]}');
COMMIT;
-- enqueue: mark_dispatched_many (after the broker accepted the message)
BEGIN;
UPDATE tasks SET dispatched_at = now(), dispatch_count = dispatch_count + 1 WHERE id = ANY(ARRAY[:task_id]::uuid[]) AND status = 'queued';
INSERT INTO task_events (task_id, trace_id, event, attrs) SELECT task_id, trace_id, 'task_dispatched', '{"broker": "PostgresBroker"}' FROM unnest(ARRAY[:task_id]::uuid[], ARRAY[:trace_id]::uuid[]) AS sent(task_id, trace_id);
COMMIT;
-- worker: claim_task (named claim + attempt row + task_claimed)
BEGIN;
SET LOCAL lock_timeout = '10s';
UPDATE tasks SET status = 'running', attempts = attempts + 1, current_job_id = gen_random_uuid(), started_at = coalesce(started_at, now()), updated_at = now(), error = NULL, dispatch_count = 0 WHERE id = (SELECT id FROM tasks WHERE status = 'queued' AND run_after <= now() AND NOT cancel_requested AND (:task_id::uuid IS NULL OR id = :task_id::uuid) ORDER BY priority DESC, run_after LIMIT 1 FOR NO KEY UPDATE) RETURNING current_job_id AS job_id, attempts, max_attempts, spec \gset
INSERT INTO jobs (id, task_id, trace_id, attempt, status, worker, lease_expires_at, heartbeat_at) VALUES (:job_id, :task_id, :trace_id, :attempts, 'running', 'pgbench', now() + make_interval(secs => 30), now());
INSERT INTO task_events (task_id, trace_id, event, attrs) VALUES (:task_id, :trace_id, 'task_claimed', jsonb_build_object('job_id', :job_id::text, 'attempt', :attempts::int, 'worker', 'pgbench'));
COMMIT;
-- worker: start_invocation / finish_invocation (autocommit, as JCT runs them)
INSERT INTO action_invocations (id, task_id, job_id, trace_id, step, action_name, inputs_hash, status) VALUES (gen_random_uuid(), :task_id, :job_id, :trace_id, 0, 'echo', '5d41402abc4b2a76b9719d911017c592', 'running') RETURNING id AS invocation_id \gset
UPDATE action_invocations SET status = 'ok', error = NULL, completed_at = now(), downstream_status = NULL, result_artifact_id = NULL WHERE id = :invocation_id;
-- worker: insert_artifact (the attempt's log blob row + artifact_stored)
BEGIN;
INSERT INTO artifacts (id, task_id, job_id, trace_id, kind, name, uri, size, sha256, content_type, status, pending_path) VALUES (gen_random_uuid(), :task_id, :job_id, :trace_id, 'log', 'worker.log.jsonl', 's3://jct-artifacts/traces/' || :trace_id::text || '/worker.log.jsonl', 1800, 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855', 'application/x-ndjson', 'stored', NULL) RETURNING id AS artifact_id \gset
INSERT INTO task_events (task_id, trace_id, event, attrs) VALUES (:task_id, :trace_id, 'artifact_stored', jsonb_build_object('artifact_id', :artifact_id::text, 'kind', 'log', 'size', 1800));
COMMIT;
-- worker: finish_attempt (fenced: lock, job done, task done, task_done)
BEGIN;
SELECT cancel_requested FROM tasks WHERE id = :task_id FOR NO KEY UPDATE;
UPDATE jobs SET status = 'done', error = NULL, finished_at = now(), updated_at = now() WHERE id = :job_id AND status = 'running';
UPDATE tasks SET status = 'done', error = NULL, updated_at = now(), current_job_id = NULL, finished_at = CASE WHEN 'done' IN ('done', 'failed', 'cancelled') THEN now() END, run_after = CASE WHEN 'done' = 'queued' THEN now() + make_interval(secs => 2.0) ELSE run_after END, dispatched_at = CASE WHEN 'done' = 'queued' THEN now() ELSE dispatched_at END WHERE id = :task_id AND status = 'running' AND current_job_id = :job_id RETURNING run_after;
INSERT INTO task_events (task_id, trace_id, event, attrs) VALUES (:task_id, :trace_id, 'task_done', jsonb_build_object('job_id', :job_id::text, 'attempt', :attempts::int));
COMMIT;
