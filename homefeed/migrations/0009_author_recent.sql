-- An author's recent engagement in one narrow row, kept by the write path in the same statement
-- as the post, like or unlike: the ranked feed's features statement reads one row per distinct
-- author (one index probe) instead of a range of up to seven `author_days` rows, each on its
-- own heap page (a third of that statement's buffers).
--
-- A ring of 8 daily slots: slot (day - 1970-01-01) mod 8 + 1 counts `day`'s posts made and
-- likes received. A write for a newer day than its slot holds resets the slot; a read sums the
-- slots whose day is within the last 7 days. 8 slots, not 7: today and the 6 days before are
-- read, and an unlike takes the like off the day it was counted on, up to 7 days back.
CREATE TABLE author_recent (
    author_id bigint PRIMARY KEY,
    days      date[] NOT NULL,
    posts     integer[] NOT NULL,
    likes     integer[] NOT NULL
);

-- `ring` with element `at` (1-based) replaced by `value`.
CREATE FUNCTION ring_put(ring anyarray, at integer, value anyelement) RETURNS anyarray
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT ring[1:at - 1] || value || ring[at + 1:8]
$$;

-- The slot counting `day`.
CREATE FUNCTION ring_slot(day date) RETURNS integer LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT (day - date '1970-01-01') % 8 + 1
$$;

-- The UTC day a post was made, from its id (homefeed/feed/ids.py).
CREATE FUNCTION post_day(id bigint) RETURNS date LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT (to_timestamp(((id >> 12) + 1704067200000) / 1000.0) AT TIME ZONE 'UTC')::date
$$;

-- Add `posts` and `likes` (either may be negative: an unlike) to an author's count for `day`.
-- A slot holding an older day is reset first; a slot holding a newer day is left alone (the
-- change is for a day more than 7 days back, which no read sums). Counts never go below 0.
-- Called in the same statement as the post, like or unlike it counts: the row lock serializes
-- racing writers, and a failure anywhere rolls the count back with the write.
CREATE FUNCTION author_recent_add(author bigint, on_day date, add_posts integer, add_likes integer)
RETURNS void LANGUAGE sql AS $$
    INSERT INTO author_recent AS r (author_id, days, posts, likes)
    VALUES ($1,
            ring_put('{1970-01-01,1970-01-01,1970-01-01,1970-01-01,1970-01-01,1970-01-01,1970-01-01,1970-01-01}'::date[], ring_slot($2), $2),
            ring_put('{0,0,0,0,0,0,0,0}'::integer[], ring_slot($2), greatest($3, 0)),
            ring_put('{0,0,0,0,0,0,0,0}'::integer[], ring_slot($2), greatest($4, 0)))
    ON CONFLICT (author_id) DO UPDATE SET
        days = CASE WHEN r.days[ring_slot($2)] < $2 THEN ring_put(r.days, ring_slot($2), $2) ELSE r.days END,
        posts = CASE WHEN r.days[ring_slot($2)] = $2 THEN ring_put(r.posts, ring_slot($2), greatest(r.posts[ring_slot($2)] + $3, 0))
                     WHEN r.days[ring_slot($2)] < $2 THEN ring_put(r.posts, ring_slot($2), greatest($3, 0))
                     ELSE r.posts END,
        likes = CASE WHEN r.days[ring_slot($2)] = $2 THEN ring_put(r.likes, ring_slot($2), greatest(r.likes[ring_slot($2)] + $4, 0))
                     WHEN r.days[ring_slot($2)] < $2 THEN ring_put(r.likes, ring_slot($2), greatest($4, 0))
                     ELSE r.likes END
$$;

-- Recount given authors' rows (all authors when NULL) from the source of truth: posts made
-- (deleted or not: deleting a post does not unmake it) and likes received, by UTC day, over the
-- ring's 8 days. Writers wait meanwhile (the lock is taken before the statement's snapshot, so a
-- like committed just before is counted and one waiting for the lock adds itself after). The
-- migration fills the table with it; tests and `homefeed rank rebuild-counters` compare and
-- repair with it.
CREATE FUNCTION rebuild_author_recent(authors bigint[]) RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    today date := (now() AT TIME ZONE 'UTC')::date;
    since bigint := ((extract(epoch FROM (today - 7)::timestamp) * 1000)::bigint - 1704067200000) << 12;
    written integer;
BEGIN
    LOCK TABLE author_recent IN SHARE ROW EXCLUSIVE MODE;
    WITH made AS (
        SELECT author_id, post_day(id) AS day, count(*)::int AS posts, 0 AS likes
        FROM posts
        WHERE id >= since AND (authors IS NULL OR author_id = ANY(authors))
        GROUP BY 1, 2
    ), liked AS (
        SELECT p.author_id, (l.created_at AT TIME ZONE 'UTC')::date AS day, 0 AS posts, count(*)::int AS likes
        FROM likes l JOIN posts p ON p.id = l.post_id
        WHERE l.created_at >= (today - 7)::timestamp AT TIME ZONE 'UTC' AND (authors IS NULL OR p.author_id = ANY(authors))
        GROUP BY 1, 2
    ), per_day AS (
        SELECT author_id, day, sum(posts)::int AS posts, sum(likes)::int AS likes
        FROM (SELECT * FROM made UNION ALL SELECT * FROM liked) d
        WHERE day BETWEEN today - 7 AND today
        GROUP BY 1, 2
    ), rings AS (
        SELECT a.author_id,
               array_agg(coalesce(d.day, date '1970-01-01') ORDER BY g) AS days,
               array_agg(coalesce(d.posts, 0) ORDER BY g) AS posts,
               array_agg(coalesce(d.likes, 0) ORDER BY g) AS likes
        FROM (SELECT DISTINCT author_id FROM per_day) a
        CROSS JOIN generate_series(1, 8) g
        LEFT JOIN per_day d ON d.author_id = a.author_id AND ring_slot(d.day) = g
        GROUP BY a.author_id
    ), emptied AS (
        -- Authors asked for with nothing in the 8 days lose their row.
        DELETE FROM author_recent r
        WHERE (authors IS NULL OR r.author_id = ANY(authors))
          AND NOT EXISTS (SELECT 1 FROM rings WHERE rings.author_id = r.author_id)
    )
    INSERT INTO author_recent AS r (author_id, days, posts, likes)
    SELECT author_id, days, posts, likes FROM rings
    ON CONFLICT (author_id) DO UPDATE SET days = EXCLUDED.days, posts = EXCLUDED.posts, likes = EXCLUDED.likes;
    GET DIAGNOSTICS written = ROW_COUNT;
    RETURN written;
END
$$;

SELECT rebuild_author_recent(NULL);

-- `author_days` is no longer written or read. It stays for one release: processes of the
-- previous release, still serving during a rolling deploy, read it.
