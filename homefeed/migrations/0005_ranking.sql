-- The ranked feed's aggregates, kept current by the write path (likes and posts statements),
-- so a ranked read sums a few rows per author instead of recounting likes.

-- A viewer's likes of an author's posts, per UTC day of the like: affinity is the last 30 days' sum.
CREATE TABLE affinity (
    user_id   bigint NOT NULL,
    author_id bigint NOT NULL,
    day       date NOT NULL,
    likes     integer NOT NULL CHECK (likes >= 0),
    PRIMARY KEY (user_id, author_id, day)
);

-- An author's posts made and likes received, per UTC day: their recent engagement rate.
CREATE TABLE author_days (
    author_id bigint NOT NULL,
    day       date NOT NULL,
    posts     integer NOT NULL DEFAULT 0 CHECK (posts >= 0),
    likes     integer NOT NULL DEFAULT 0 CHECK (likes >= 0),
    PRIMARY KEY (author_id, day)
);

-- Sampled impressions: a post shown to a viewer at a position of a LATEST (0) or RANKED (1)
-- page, with the features the ranker saw (the training rows of `homefeed rank train`).
CREATE TABLE impressions (
    viewer_id  bigint NOT NULL,
    post_id    bigint NOT NULL,
    position   integer NOT NULL,
    feed_order smallint NOT NULL CHECK (feed_order IN (0, 1)),
    shown_at   timestamptz NOT NULL,
    features   real[] NOT NULL
);
CREATE INDEX impressions_by_time ON impressions (shown_at);

-- Likes already made count from the start.
INSERT INTO affinity (user_id, author_id, day, likes)
SELECT l.user_id, p.author_id, (l.created_at AT TIME ZONE 'UTC')::date, count(*)
FROM likes l JOIN posts p ON p.id = l.post_id
GROUP BY 1, 2, 3;
INSERT INTO author_days (author_id, day, posts, likes)
SELECT author_id, day, sum(posts), sum(likes)
FROM (
    SELECT author_id, (to_timestamp(((id >> 12) + 1704067200000) / 1000.0) AT TIME ZONE 'UTC')::date AS day,
           1 AS posts, 0 AS likes
    FROM posts WHERE deleted_at IS NULL
    UNION ALL
    SELECT p.author_id, (l.created_at AT TIME ZONE 'UTC')::date, 0, 1
    FROM likes l JOIN posts p ON p.id = l.post_id
) d
GROUP BY 1, 2;
