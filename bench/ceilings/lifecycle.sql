-- pg_ceiling: the SQL one echo task costs JCT on the PostgreSQL broker (the default), with
-- JCT's own statement texts and transaction boundaries, run by pgbench -M prepared (JCT's
-- psycopg prepares a statement after its fifth run; so does dramatiq-postgres'). One pgbench
-- "transaction" = one task's whole life = 5 transactions, 5 statements + 2 BEGIN/COMMIT pairs
-- (+ 2 SET LOCAL):
--
--   API    enqueue     one statement, autocommit: tasks, both events, the wake-up into
--                      dramatiq.queue (+ NOTIFY) (models/state_machine.py create_tasks with its
--                      outbox, models/dispatch.py PG_BROKER_OUTBOX_CTES)
--   worker broker take BEGIN; dramatiq-postgres' CLAIM (queue row -> consumed); COMMIT, not
--                      waiting for the WAL flush (JCT sets synchronous_commit = off once per
--                      broker connection, broker.pg_broker_pool; here SET LOCAL, one more
--                      prepared statement)
--   worker claim       one statement, autocommit: claim the next task + jobs row + task_claimed
--                      (state_machine.claim_task, claim-next form; the named form, in its own
--                      transaction with SET LOCAL lock_timeout, runs only when claim-next finds
--                      nothing, which a backlog never does)
--   worker finish      one statement, autocommit, fenced: jobs + tasks + action_invocations +
--                      artifacts + artifact_stored + task_done (state_machine.finish_attempt
--                      with models/trail.py and models/invocations.py UPSERT_CTE)
--   worker broker ack  BEGIN; dramatiq-postgres' ACK (DELETE + NOTIFY); COMMIT (as the take)
--
-- This is what tests/integration/test_statement_count.py counts for JCT (1 statement per
-- enqueue, 2 per echo attempt) plus the broker's two per-task statements, and what
-- pg_stat_statements showed per task in a JCT burn-down (bench `sql_per_task`). Deferred FK
-- checks (the RI trigger's SELECT … FOR KEY SHARE on jobs) fire here as they do for JCT.
-- Left out, as JCT does not run them per task: the lease keeper's one renewal statement a
-- second per worker process (all its leases), its once-a-second cancel-flag read, the broker's
-- heartbeat and maintenance, the dispatcher's passes; the broker pool's check of a connection
-- as it hands it out (an empty query) and peewee's `SELECT 1` (skipped for a connection given
-- back within 5 s, so never in a busy run).
--
-- Differences from JCT, all small: ids JCT makes in Python (task, trace, message, attempt,
-- invocation, log artifact) come from gen_random_uuid() here, and the enqueue's JSON
-- documents are built in SQL (JCT sends them as jsonb parameters); the finish leaves out the
-- command columns of action_invocations (exit_code … output_tail, NULL for an echo step); the
-- broker CLAIM takes 1 message (JCT's consumer takes up to its free prefetch at once: 0.81
-- CLAIMs per task in a burn-down) and also returns message_id (the consumer reads it from the
-- message). Like JCT, a client claims the next task in line, not necessarily the one it
-- enqueued; the broker message it takes is likewise the oldest one.

-- API: enqueue, one statement on its own (create_tasks with the outbox: tasks, both events,
-- the wake-up into dramatiq.queue and its NOTIFY; JCT sends each list as one jsonb document)
WITH ids AS (
    SELECT gen_random_uuid() AS task_id, gen_random_uuid() AS trace_id,
           gen_random_uuid() AS message_id),
created AS (
    INSERT INTO tasks (id, trace_id, name, spec, status, priority, max_attempts, timeout_s,
                       labels, idempotency_key, request_hash, dispatched_at, dispatch_count)
    SELECT (t.doc->>'id')::uuid, (t.doc->>'trace_id')::uuid, t.doc->>'name', t.doc->'spec',
           'queued', (t.doc->>'priority')::int, (t.doc->>'max_attempts')::int,
           (t.doc->>'timeout_s')::float8, t.doc->'labels', t.doc->>'idempotency_key',
           t.doc->>'request_hash', now(), 1
      FROM ids, jsonb_array_elements(jsonb_build_array(jsonb_build_object(
               'id', ids.task_id, 'trace_id', ids.trace_id, 'name', NULL,
               'spec', '{"name": null, "steps": [{"action": "echo", "params": {"message": "bench"}}], "max_attempts": 3, "timeout_s": null, "priority": 0, "labels": {"bench_phase": "burn"}}'::jsonb,
               'priority', 0, 'max_attempts', 3, 'timeout_s', NULL,
               'labels', '{"bench_phase": "burn"}'::jsonb, 'idempotency_key', NULL,
               'request_hash', NULL))) WITH ORDINALITY AS t(doc, n)
     ORDER BY t.n
    RETURNING id),
events AS (
    INSERT INTO task_events (task_id, trace_id, event, attrs)
    SELECT (e.doc->>0)::uuid, (e.doc->>1)::uuid, e.doc->>2, e.doc->3
      FROM ids, jsonb_array_elements(jsonb_build_array(
               jsonb_build_array(ids.task_id, ids.trace_id, 'task_enqueued',
                                 '{"name": null, "steps": ["echo"]}'::jsonb),
               jsonb_build_array(ids.task_id, ids.trace_id, 'task_dispatched',
                                 jsonb_build_object('broker', 'PostgresBroker',
                                                    'message_id', ids.message_id::text))))
           WITH ORDINALITY AS e(doc, n)
     ORDER BY e.n),
woken AS (
    INSERT INTO dramatiq.queue (queue_name, message_id, "state", message, available_at)
    SELECT 'jctbench', (m.doc->>0)::uuid, 'queued', m.doc->1, now()
      FROM ids, jsonb_array_elements(jsonb_build_array(jsonb_build_array(ids.message_id, jsonb_build_object(
               'queue_name', 'jctbench', 'actor_name', 'process_task',
               'args', jsonb_build_array(ids.task_id::text), 'kwargs', '{}'::jsonb,
               'options', jsonb_build_object('task_id', ids.task_id::text,
                                             'trace_id', replace(ids.trace_id::text, '-', ''),
                                             'traceparent', '00-' || replace(ids.trace_id::text, '-', '') || '-9676d1755a6b4585-01'),
               'message_id', ids.message_id::text, 'message_timestamp', 1796197797601))))
           AS m(doc)
    ON CONFLICT (message_id) DO UPDATE SET "state" = 'queued', message = EXCLUDED.message,
           queue_name = EXCLUDED.queue_name, available_at = EXCLUDED.available_at,
           worker_id = NULL, consumed_at = NULL, mtime = now()
    RETURNING queue_name),
notified AS (
    SELECT pg_notify('dramatiq.' || 'jctbench' || '.enqueue', '') WHERE EXISTS (SELECT FROM woken))
SELECT (SELECT count(*) FROM created) AS created, (SELECT count(*) FROM notified) AS notified,
       gen_random_uuid() AS attempt_id, gen_random_uuid() AS invocation_id,
       gen_random_uuid() AS log_id
\gset

-- worker: the broker's consumer takes a message (dramatiq-postgres CLAIM, its own transaction;
-- the broker's connections commit without waiting for the WAL flush: broker.pg_broker_pool)
BEGIN;
SET LOCAL synchronous_commit = off;
WITH next AS (
    SELECT message_id
    FROM dramatiq.queue
    WHERE queue_name = 'jctbench'
        AND "state" = 'queued'
        AND available_at <= NOW()
    ORDER BY available_at, position
    LIMIT 1
    FOR UPDATE SKIP LOCKED
)
UPDATE dramatiq.queue AS q
    SET "state" = 'consumed',
        worker_id = '6f1c2b9e-0d4a-4e8b-9f57-3c2d1e0a9b87',
        consumed_at = NOW(),
        mtime = NOW()
FROM next
WHERE q.message_id = next.message_id
RETURNING q.message::text AS message, q.message_id AS taken_message_id
\gset
COMMIT;

-- worker: claim the next task, its attempt row and task_claimed (claim_task, one statement)
WITH claimed AS (
UPDATE tasks SET status = 'running', attempts = attempts + 1, current_job_id = :attempt_id,
       started_at = coalesce(started_at, now()), updated_at = now(), error = NULL,
       dispatch_count = 0
 WHERE id = (SELECT id FROM tasks
              WHERE status = 'queued' AND run_after <= now() AND NOT cancel_requested
                AND (NULL::uuid IS NULL OR id = NULL::uuid)
              ORDER BY priority DESC, run_after
              LIMIT 1 FOR NO KEY UPDATE SKIP LOCKED)
RETURNING id, trace_id, attempts, max_attempts, spec, timeout_s
),
started AS (
    INSERT INTO jobs (id, task_id, trace_id, attempt, status, worker, worker_host, worker_pid,
                      worker_boot_id, worker_started_at, lease_expires_at, heartbeat_at)
    SELECT :attempt_id, id, trace_id, attempts, 'running', 'pgbench:4242', 'pgbench', 4242,
           'a3c1a9a0-5d0e-4c55-9d43-2f4c2c7f1e11', 1234.5, now() + make_interval(secs => 30.0), now()
      FROM claimed),
event AS (
    INSERT INTO task_events (task_id, trace_id, event, attrs)
    SELECT id, trace_id, 'task_claimed',
           jsonb_build_object('job_id', :attempt_id::text, 'attempt', attempts,
                              'worker', 'pgbench:4242'::text)
      FROM claimed)
SELECT id AS task_id, trace_id, attempts, max_attempts, spec, timeout_s FROM claimed
\gset

-- worker: the attempt's end with its trail, fenced (finish_attempt, one statement)
WITH held AS (
    SELECT id FROM tasks
     WHERE id = :task_id AND status = 'running' AND current_job_id = :attempt_id
       AND cancel_requested = false
       FOR NO KEY UPDATE),
ended AS (
    UPDATE jobs SET status = 'done', error = NULL, finished_at = now(),
           updated_at = now()
     WHERE id = :attempt_id AND status = 'running' AND EXISTS (SELECT FROM held)
    RETURNING id),
settled AS (
    UPDATE tasks SET status = 'done', error = NULL, updated_at = now(),
           current_job_id = NULL, finished_at = CASE WHEN true THEN now() END,
           run_after = CASE WHEN false THEN now() + make_interval(secs => 2.0)
                            ELSE run_after END,
           dispatched_at = CASE WHEN false THEN now() ELSE dispatched_at END
     WHERE id = :task_id AND EXISTS (SELECT FROM ended)
    RETURNING run_after),
invocations AS (
    INSERT INTO action_invocations (id, task_id, job_id, trace_id, step, action_name, inputs_hash,
                                    status, started_at, completed_at, result_artifact_id,
                                    downstream_status, error)
    SELECT i.id, :task_id, :attempt_id, :trace_id, i.step, i.action_name, i.inputs_hash,
           i.status, i.started_at, i.completed_at, i.result_artifact_id, i.downstream_status,
           i.error
      FROM unnest(ARRAY[:invocation_id]::uuid[], ARRAY[0]::int[], ARRAY['echo']::text[],
                  ARRAY['cdcbe17880f80567b82129f2a1969866df079c96571e49dbc01b682e8bc4d2c3']::text[],
                  ARRAY['ok']::text[], ARRAY[now()]::timestamptz[],
                  ARRAY[now()]::timestamptz[], ARRAY[NULL]::uuid[],
                  ARRAY[NULL]::int[], ARRAY[NULL]::text[])
           AS i(id, step, action_name, inputs_hash, status, started_at, completed_at,
                result_artifact_id, downstream_status, error)
     WHERE EXISTS (SELECT FROM settled)
    ON CONFLICT (id) DO UPDATE SET status = EXCLUDED.status, completed_at = EXCLUDED.completed_at,
           result_artifact_id = EXCLUDED.result_artifact_id,
           downstream_status = EXCLUDED.downstream_status, error = EXCLUDED.error),
log_artifact AS (
    INSERT INTO artifacts (id, task_id, job_id, trace_id, kind, name, uri, size, sha256,
                           content_type, status, pending_path)
    SELECT :log_id, :task_id, :attempt_id, :trace_id, 'log', 'worker.log.jsonl',
           's3://jct-artifacts/' || replace(:trace_id::text, '-', '') || '/' || :task_id::text || '/' || :attempt_id::text || '/worker.log.jsonl',
           1800, 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
           'application/x-ndjson', 'stored', NULL
     WHERE true AND EXISTS (SELECT FROM settled)),
events AS (
    INSERT INTO task_events (task_id, trace_id, event, attrs)
    SELECT :task_id, :trace_id, e.event, e.attrs
      FROM unnest(ARRAY['artifact_stored', 'task_done']::text[],
                  ARRAY[jsonb_build_object('artifact_id', :log_id::text, 'kind', 'log',
                                           'uri', 's3://jct-artifacts/' || replace(:trace_id::text, '-', '') || '/' || :task_id::text || '/' || :attempt_id::text || '/worker.log.jsonl',
                                           'size', 1800, 'pending_path', NULL),
                        jsonb_build_object('job_id', :attempt_id::text, 'attempt', :attempts::int)]::jsonb[])
           WITH ORDINALITY AS e(event, attrs, n)
     WHERE EXISTS (SELECT FROM settled)
     ORDER BY e.n)
SELECT (SELECT run_after FROM settled), EXISTS (SELECT FROM settled) AS settled,
       (SELECT cancel_requested FROM tasks WHERE id = :task_id),
       EXISTS (SELECT FROM jobs WHERE id = :attempt_id AND status = 'running');

-- worker: the broker acks the message (dramatiq-postgres ACK, its own transaction, no flush
-- wait as above)
BEGIN;
SET LOCAL synchronous_commit = off;
WITH acked AS (
    DELETE FROM dramatiq.queue
    WHERE message_id = :taken_message_id
        AND queue_name = 'jctbench'
        AND "state" = 'consumed'
    RETURNING message
)
SELECT
    pg_notify('dramatiq.jctbench.ack',
        CASE WHEN octet_length(message::text) >= 8000
        THEN jsonb_build_object('message_id', :taken_message_id::text)::text
        ELSE message::text
        END
    )
FROM acked;
COMMIT;
