-- An artifact whose blob the object store refused is kept on the worker's disk and its row is
-- marked pending; the uploader stores it later and flips the row to stored. No log is lost.
ALTER TABLE artifacts
    ADD COLUMN status text NOT NULL DEFAULT 'stored' CHECK (status IN ('stored', 'pending')),
    ADD COLUMN pending_path text;
CREATE INDEX artifacts_pending_idx ON artifacts (created_at) WHERE status = 'pending';
