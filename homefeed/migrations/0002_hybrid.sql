-- How an author's posts reach followers: 0 push (fan-out on write), 1 pull (celebrity:
-- readers merge the author's recent list), 2 draining (leaving pull: fanned out AND
-- pulled until the backfill of followers' timelines has finished).
ALTER TABLE users ADD COLUMN fanout_mode smallint NOT NULL DEFAULT 0 CHECK (fanout_mode IN (0, 1, 2));
-- The first post an author made while pulled: what a drain must backfill.
ALTER TABLE users ADD COLUMN pull_from bigint;
CREATE INDEX users_pulled ON users (id) WHERE fanout_mode <> 0;

-- Chunked jobs: a big follower list is split into follower-id ranges (lo, hi] that
-- several workers share.
ALTER TABLE outbox ADD COLUMN range_lo bigint;
ALTER TABLE outbox ADD COLUMN range_hi bigint;
CREATE INDEX outbox_by_actor ON outbox (actor_id, kind);
