-- What a `command` step left besides its artifacts: how it ended (exit code, or the signal that
-- ended it), what it used (wall time, CPU seconds, the largest resident memory) and the last
-- lines of its output, kept current while it runs so the console can show a live tail.
-- result_artifact_id (its log) exists since 0001.
ALTER TABLE action_invocations
    ADD COLUMN exit_code integer,
    ADD COLUMN signal integer,
    ADD COLUMN wall_s double precision,
    ADD COLUMN cpu_s double precision,
    ADD COLUMN max_rss_bytes bigint,
    ADD COLUMN output_tail text;
