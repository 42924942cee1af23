-- Ids: milliseconds since 2024-01-01 shifted left 12 bits, plus a 12-bit sequence.
-- Time-sortable, below 2^53 (exact in a double and in JavaScript) until ~2093.
CREATE SEQUENCE id_sequence;

CREATE FUNCTION next_id() RETURNS bigint LANGUAGE sql VOLATILE AS $$
    SELECT ((floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint - 1704067200000) << 12)
         | (nextval('id_sequence') % 4096)
$$;

CREATE TABLE users (
    id              bigint PRIMARY KEY DEFAULT next_id(),
    handle          text NOT NULL CHECK (handle ~ '^[A-Za-z0-9_]{1,30}$'),
    display_name    text NOT NULL CHECK (char_length(display_name) BETWEEN 1 AND 50),
    password_hash   text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    last_seen_at    timestamptz NOT NULL DEFAULT now(),
    follower_count  bigint NOT NULL DEFAULT 0 CHECK (follower_count >= 0),
    following_count bigint NOT NULL DEFAULT 0 CHECK (following_count >= 0)
);
-- Handles are unique regardless of case; lookups go through lower(handle).
CREATE UNIQUE INDEX users_handle_key ON users (lower(handle));

-- Keyed by author so the table can be distributed by author_id; created_at derives from id.
CREATE TABLE posts (
    author_id  bigint NOT NULL REFERENCES users (id),
    id         bigint NOT NULL DEFAULT next_id(),
    text       text NOT NULL CHECK (char_length(text) BETWEEN 1 AND 280),
    deleted_at timestamptz,
    like_count bigint NOT NULL DEFAULT 0 CHECK (like_count >= 0),
    PRIMARY KEY (author_id, id)
);
CREATE UNIQUE INDEX posts_id_key ON posts (id);
CREATE INDEX posts_live_by_author ON posts (author_id, id DESC) WHERE deleted_at IS NULL;

-- The follow graph, stored twice: by follower (for feeds) and by followee (for fan-out).
-- Both rows are written in one transaction.
CREATE TABLE follows (
    follower_id bigint NOT NULL REFERENCES users (id),
    followee_id bigint NOT NULL REFERENCES users (id),
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (follower_id, followee_id),
    CHECK (follower_id <> followee_id)
);
CREATE TABLE followers (
    followee_id bigint NOT NULL REFERENCES users (id),
    follower_id bigint NOT NULL REFERENCES users (id),
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (followee_id, follower_id)
);

CREATE TABLE blocks (
    blocker_id bigint NOT NULL REFERENCES users (id),
    blocked_id bigint NOT NULL REFERENCES users (id),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (blocker_id, blocked_id),
    CHECK (blocker_id <> blocked_id)
);
CREATE INDEX blocks_by_blocked ON blocks (blocked_id, blocker_id);

CREATE TABLE mutes (
    muter_id   bigint NOT NULL REFERENCES users (id),
    muted_id   bigint NOT NULL REFERENCES users (id),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (muter_id, muted_id),
    CHECK (muter_id <> muted_id)
);

CREATE TABLE likes (
    user_id    bigint NOT NULL REFERENCES users (id),
    post_id    bigint NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, post_id)
);

-- Work for the fan-out workers, committed in the same transaction as the change it describes.
CREATE TABLE outbox (
    id           bigserial PRIMARY KEY,
    kind         text NOT NULL,
    actor_id     bigint NOT NULL,
    subject_id   bigint NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    available_at timestamptz NOT NULL DEFAULT now(),
    attempts     integer NOT NULL DEFAULT 0
);
CREATE INDEX outbox_available ON outbox (available_at, id);
