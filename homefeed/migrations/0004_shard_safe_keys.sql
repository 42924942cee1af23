-- Keys a sharded store (Citus) can enforce: every unique key of a distributed table holds
-- its distribution column, and foreign keys join only co-located rows. The plan, table by
-- table, is docs/scale.md; tests/migrations/test_shard_safe.py reads this schema back.

-- Posts are distributed by author_id: a unique index on id alone cannot be enforced per
-- shard. Look-ups by id keep a plain index; a post id carries its author's logical shard
-- in its low 6 bits (homefeed/feed/ids.py), so on a sharded store it also names the shard.
DROP INDEX posts_id_key;
CREATE INDEX posts_by_id ON posts (id);
CREATE FUNCTION next_post_id(author bigint) RETURNS bigint LANGUAGE sql VOLATILE AS $$
    SELECT ((floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint - 1704067200000) << 12)
         | ((nextval('id_sequence') % 64) << 6)
         | (author & 63)
$$;
-- A post id needs its author: Posts.create passes next_post_id(author_id).
ALTER TABLE posts ALTER COLUMN id DROP DEFAULT;

-- Handles are unique across all users, but users are distributed by id: the uniqueness
-- moves to a table of its own, distributed by the handle. The trigger keeps it in step on
-- a single server (sign-up, seeds and tests all insert users).
CREATE TABLE handles (
    handle_key text PRIMARY KEY,
    user_id    bigint NOT NULL
);
INSERT INTO handles (handle_key, user_id) SELECT lower(handle), id FROM users;
DROP INDEX users_handle_key;

CREATE FUNCTION keep_handles() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        DELETE FROM handles WHERE handle_key = lower(OLD.handle) AND user_id = OLD.id;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO handles (handle_key, user_id) VALUES (lower(NEW.handle), NEW.id);
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER users_keep_handles AFTER INSERT OR DELETE OR UPDATE OF handle ON users
    FOR EACH ROW EXECUTE FUNCTION keep_handles();
-- Emptying users (seed --reset, tests) frees every handle.
CREATE FUNCTION free_handles() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM handles;  -- TRUNCATE here would clash with a TRUNCATE naming both tables
    RETURN NULL;
END
$$;
CREATE TRIGGER users_free_handles AFTER TRUNCATE ON users
    FOR EACH STATEMENT EXECUTE FUNCTION free_handles();

-- Foreign keys from the second user of a pair cross shards (the row lives on the first
-- user's shard): they go. Users are never deleted, so nothing dangles.
ALTER TABLE follows DROP CONSTRAINT follows_followee_id_fkey;
ALTER TABLE followers DROP CONSTRAINT followers_follower_id_fkey;
ALTER TABLE blocks DROP CONSTRAINT blocks_blocked_id_fkey;
ALTER TABLE mutes DROP CONSTRAINT mutes_muted_id_fkey;

-- The outbox and dead letters are distributed by actor_id, beside the actor's posts and
-- follows, so a write and its job commit on one shard.
ALTER TABLE outbox DROP CONSTRAINT outbox_pkey, ADD PRIMARY KEY (actor_id, id);
CREATE INDEX outbox_by_id ON outbox (id);
ALTER TABLE dead_jobs DROP CONSTRAINT dead_jobs_pkey, ADD PRIMARY KEY (actor_id, id);
CREATE INDEX dead_jobs_by_id ON dead_jobs (id);
