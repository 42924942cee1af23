-- Leases name their holder, so a heartbeat renews only the jobs its worker still holds and
-- a worker that lost a job to another (its lease ran out) leaves that job alone.
ALTER TABLE outbox ADD COLUMN leased_by uuid;
-- The last failure's text, carried from attempt to attempt into the dead-letter table.
ALTER TABLE outbox ADD COLUMN last_error text;

-- Jobs that failed (or were abandoned by dying workers) HOMEFEED_JOB_MAX_ATTEMPTS times.
-- They keep their outbox id and creation time, so `homefeed jobs retry` puts them back
-- where they were in the queue.
CREATE TABLE dead_jobs (
    id         bigint PRIMARY KEY,
    kind       text NOT NULL,
    actor_id   bigint NOT NULL,
    subject_id bigint NOT NULL,
    range_lo   bigint,
    range_hi   bigint,
    created_at timestamptz NOT NULL,
    attempts   integer NOT NULL,
    last_error text NOT NULL,
    died_at    timestamptz NOT NULL DEFAULT now()
);
