-- The uploader marks the pending artifacts it takes, then uploads with no transaction open (an
-- S3 upload with retries can take long; row locks must not be held across it). A mark older
-- than the claim window belongs to an uploader that died: the row is due again.
ALTER TABLE artifacts ADD COLUMN upload_claimed_at timestamptz;
