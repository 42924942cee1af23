-- Post ids are unique by construction only up to 64 ids per millisecond (their sequence
-- bits), and not at all if the clock steps back: with no unique index on posts.id (a sharded
-- store cannot enforce one, see 0004), two authors of one logical shard could be handed the
-- same id, and every cache keyed by post id would then lose one of the two posts.
-- Minting now makes sure: it locks the candidate id for the rest of the transaction, and
-- takes another if a committed post already has it. Two transactions minting the same
-- candidate take turns on the lock, and the second sees the first's row once it commits.
-- The id names its author's shard, so on a sharded store the lock and the check are both
-- local to that shard.
CREATE OR REPLACE FUNCTION next_post_id(author bigint) RETURNS bigint LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    candidate bigint;
BEGIN
    LOOP
        candidate := ((floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint - 1704067200000) << 12)
                   | ((nextval('id_sequence') % 64) << 6)
                   | (author & 63);
        PERFORM pg_advisory_xact_lock(candidate);
        IF NOT EXISTS (SELECT 1 FROM posts WHERE id = candidate) THEN
            RETURN candidate;
        END IF;
    END LOOP;
END
$$;
