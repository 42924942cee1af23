-- Fan-out checks every follower's activity (last_seen_at). This index holds it beside the id,
-- so the check is an index-only probe of a narrow index (about 300 users a page) instead of a
-- visit to each follower's wide users row: PostgreSQL either walks the chunk's id range of this
-- index in step with the follower range (a merge join) or probes it once per follower, and
-- neither touches the users heap while the visibility map says its pages are all-visible.
CREATE INDEX users_activity ON users (id) INCLUDE (last_seen_at);
