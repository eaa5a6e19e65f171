-- Who holds a running attempt, precisely enough to tell when the holder is gone: its host, its
-- process id, the boot of the machine (the kernel's boot id: a pid means something only within
-- one boot) and when the process started (a pid can be reused). A worker that finds a running
-- attempt of its own host and boot whose process is gone releases it at once instead of waiting
-- out the lease. `worker` ("host:pid") stays for display.
ALTER TABLE jobs
    ADD COLUMN worker_host text,
    ADD COLUMN worker_pid integer,
    ADD COLUMN worker_boot_id text,
    ADD COLUMN worker_started_at double precision;
CREATE INDEX jobs_running_holder_idx ON jobs (worker_host, worker_boot_id) WHERE status = 'running';

-- The claim takes the due task with the highest priority, oldest first.
CREATE INDEX tasks_claim_order_idx ON tasks (priority DESC, run_after) WHERE status = 'queued';
