-- How many wake-up messages a queued task has been sent. The dispatcher backs off by it, so a
-- backlog that waits for busy workers is not re-sent (and duplicated in the queue) every
-- threshold, forever.
ALTER TABLE tasks ADD COLUMN dispatch_count integer NOT NULL DEFAULT 0;
