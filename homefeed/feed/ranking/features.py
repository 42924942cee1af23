"""The ranked feed's candidates and their features, read in one PostgreSQL statement per page.

Candidates are the viewer's visible posts (their own and their followees', not deleted, muted or
blocked either way) from the newest back to the window, at most `cap` of them: the same posts
LATEST shows at the top of the feed. They come from one of two sources, which give the same
candidates:
- AMONG: the ids a LATEST read merges (the viewer's timeline and pulled lists, ranker.py), filtered
  as the visibility read filters them. The usual path: a primary-key probe per id.
- CANDIDATES: PostgreSQL alone (an index range per followee), when Redis cannot vouch for the
  whole window (a cold or trimmed timeline, Redis down), so the ranking depends neither on the
  celebrity threshold nor on what Redis holds.
Features come from aggregates the write path keeps (posts.like_count, affinity, migration 0005;
author_recent, migration 0009): nothing is recounted per read except the likes by the viewer's
followees on liked candidates (social proof): their likers, hashed against the viewer's follows
(migration 0006), or for a very popular post its likes probed per followee. Per-author parts are
subqueries probing an index: written as joins, PostgreSQL scanned whole tables per read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cached_property
from typing import Protocol

import asyncpg
import numpy as np
import numpy.typing as npt

from homefeed.feed.ids import EPOCH_MS, SEQUENCE_BITS, lowest_id_at

# Model inputs, in this order (impressions store them so; a model file names them).
NAMES = ("age_hours", "log_likes", "log_velocity", "log_social", "log_affinity", "own", "log_author_rate")
AFFINITY_DAYS = 30
AUTHOR_RATE_DAYS = 7
# Social proof reads a liked post's likers when they are at most this many times the viewer's
# followees, else probes the post's likes once per followee: a liker read and hashed costs a
# small fraction of a probe (3 buffers).
LIKERS_PER_FOLLOWEE = 32


def _ring_sum(counts: str, since: str) -> str:
    """The sum of an author_recent ring's `counts` (posts or likes) over slots of day `since` or later."""
    return " + ".join(
        f"(CASE WHEN r.days[{i}] >= {since} THEN r.{counts}[{i}] ELSE 0 END)" for i in range(1, 9)
    )


def _rate(since: str) -> str:
    """Likes received per post made since a day (AUTHOR_RATE_DAYS back), from one author_recent row."""
    return f"({_ring_sum('likes', since)})::float8 / greatest(({_ring_sum('posts', since)})::float8, 1)"


_RATE = _rate("$3")

# One row of aligned arrays, from four independent parts (no join between them): per candidate
# (id, author, likes), per liked candidate (social proof), per distinct author (engagement rate),
# and the viewer's affinity per author. The statement's generic plan guesses a handful of
# candidates; with per-author CTEs joined to the candidates it re-ran them once per candidate
# (47 ms, 36k buffers, for 91 candidates). Arrays, not rows: building a Python record per
# candidate and walking them cost the API more than PostgreSQL's work. Each array is sent as
# bytes, its values fixed-width and big-endian (int8send, float8send), which numpy reads in
# place: a bigint[] became a Python int per element before numpy copied it again.
# Affinity is the viewer's one index range (their likes by author, 30 days; the top-3 come from
# it too), not a probe per candidate author.
_TAIL = f"""
-- Social proof: how many of the viewer's followees liked each liked candidate. Usually from the
-- likes' side: every liker of those candidates (index-only, likes_by_post, migration 0006) kept
-- where the viewer follows them, the follows read once and hashed. A probe of the follows per
-- liker cost 3 buffers a liker, half of the statement's buffers on an engaged world. A post liked
-- by more than LIKERS_PER_FOLLOWEE times as many people as the viewer follows is counted from the
-- other side, a probe of its likes per followee, so one very popular post costs at most that.
, proof AS (
    SELECT l.post_id, count(*)::int AS n
    FROM likes l
    WHERE l.post_id = ANY (ARRAY(
              SELECT id FROM cand
              WHERE like_count > 0
                AND like_count <= {LIKERS_PER_FOLLOWEE} * (SELECT following_count FROM users WHERE id = $1)))
      AND l.user_id IN (SELECT followee_id FROM follows WHERE follower_id = $1)
    GROUP BY l.post_id
    UNION ALL
    SELECT c.id, (SELECT count(*)::int FROM follows f
                  WHERE f.follower_id = $1
                    AND EXISTS (SELECT 1 FROM likes l WHERE l.user_id = f.followee_id AND l.post_id = c.id))
    FROM cand c
    WHERE c.like_count > {LIKERS_PER_FOLLOWEE} * (SELECT following_count FROM users WHERE id = $1)
)
, aff AS (
    SELECT author_id, sum(likes)::int AS likes FROM affinity
    WHERE user_id = $1 AND day >= $2
    GROUP BY author_id
)
SELECT
    (SELECT string_agg(int8send(c.id), '' ORDER BY c.id DESC) FROM cand c),
    (SELECT string_agg(int8send(c.author_id), '' ORDER BY c.id DESC) FROM cand c),
    (SELECT string_agg(int8send(c.like_count), '' ORDER BY c.id DESC) FROM cand c),
    (SELECT string_agg(int8send(post_id), '' ORDER BY post_id) FROM proof),
    (SELECT string_agg(int4send(n), '' ORDER BY post_id) FROM proof),
    (SELECT string_agg(int8send(a.author_id), '' ORDER BY a.author_id)
     FROM (SELECT DISTINCT author_id FROM cand) a),
    -- One row per author (its 8-day ring, migration 0009), probed by primary key: a subquery,
    -- not a join, so no plan reads the whole table. Its slots are summed by subscript: unnesting
    -- the three arrays (a function scan per author) made the statement 8% dearer for PostgreSQL.
    (SELECT string_agg(float8send(coalesce(
        (SELECT {_RATE} FROM author_recent r WHERE r.author_id = a.author_id), 0)), '' ORDER BY a.author_id)
     FROM (SELECT DISTINCT author_id FROM cand) a),
    (SELECT string_agg(int8send(author_id), '' ORDER BY author_id) FROM aff),
    (SELECT string_agg(int4send(likes), '' ORDER BY author_id) FROM aff)
"""

# What a first page shows of its posts, so that it needs no visibility read of its own: each
# candidate's text (aligned with the ids, newest first) and the viewer's likes from the oldest
# candidate up, one range of likes_pkey (user_id, post_id) rather than a probe per candidate.
# The candidates are already the posts the viewer may see now (the visibility read's filter,
# the viewer's existence included), so they are the page's posts as that read would give them.
_PAGE = """,
    (SELECT array_agg(c.text ORDER BY c.id DESC) FROM cand c),
    (SELECT string_agg(int8send(l.post_id), '' ORDER BY l.post_id) FROM likes l
     WHERE l.user_id = $1 AND l.post_id >= (SELECT min(id) FROM cand))
"""

# $4: the window's lowest id, $5: most candidates.
CANDIDATES = (
    """
WITH cand AS (
    SELECT p.id, p.author_id, p.like_count, p.text
    FROM (SELECT followee_id AS author_id FROM follows WHERE follower_id = $1 UNION SELECT $1) a
    CROSS JOIN LATERAL (
        SELECT id, author_id, like_count, text FROM posts
        WHERE author_id = a.author_id AND deleted_at IS NULL AND id >= $4
        ORDER BY id DESC LIMIT $5
    ) p
    WHERE EXISTS (SELECT 1 FROM users v WHERE v.id = $1)
      AND NOT EXISTS (SELECT 1 FROM mutes WHERE muter_id = $1 AND muted_id = a.author_id)
      AND NOT EXISTS (SELECT 1 FROM blocks WHERE blocker_id = $1 AND blocked_id = a.author_id)
      AND NOT EXISTS (SELECT 1 FROM blocks WHERE blocker_id = a.author_id AND blocked_id = $1)
    ORDER BY p.id DESC LIMIT $5
)"""
    + _TAIL
    + _PAGE
)

# $4: ids the viewer's timeline and pulled lists hold in the window (unfiltered), $5: most
# candidates. The visibility read's filter (store/visible.py), but the viewer's follows are read
# once and hashed: with hundreds of candidates that is cheaper than a probe per post.
AMONG = (
    """
WITH cand AS (
    SELECT p.id, p.author_id, p.like_count, p.text
    FROM posts p
    WHERE p.id = ANY($4::bigint[]) AND p.deleted_at IS NULL
      AND EXISTS (SELECT 1 FROM users v WHERE v.id = $1)
      AND p.author_id IN (SELECT followee_id FROM follows WHERE follower_id = $1 UNION ALL SELECT $1)
      AND p.author_id <> ALL (ARRAY(
          SELECT muted_id FROM mutes WHERE muter_id = $1
          UNION ALL SELECT blocked_id FROM blocks WHERE blocker_id = $1
          UNION ALL SELECT blocker_id FROM blocks WHERE blocked_id = $1))
    ORDER BY p.id DESC LIMIT $5
)"""
    + _TAIL
    + _PAGE
)

# $4: the posts (already shown, so not filtered again).
OF_POSTS = (
    """
WITH cand AS (SELECT id, author_id, like_count FROM posts WHERE id = ANY($4::bigint[]))"""
    + _TAIL
)

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
B = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class Shown:
    """What a first page shows of its candidates beyond their features: each one's text (aligned
    with Candidates.ids) and the posts at or above the oldest candidate the viewer likes
    (ascending)."""

    texts: list[str]
    liked: I64


@dataclass(frozen=True)
class Candidates:
    """Candidates newest first, one array element per post, with their features."""

    ids: I64
    authors: I64
    likes: F64
    social: F64
    affinity: F64
    author_rate: F64
    # The author is one of the viewer's top-3 affinity authors (30 days).
    top_author: B
    now_ms: int
    # Read by the statements a first page ranks with (AMONG, CANDIDATES), so that the page needs
    # no visibility read of its own; None from OF_POSTS.
    shown: Shown | None = None

    def __len__(self) -> int:
        return len(self.ids)

    @cached_property
    def age_hours(self) -> F64:
        """Hours since each post was made (never negative). Computed once: scoring and both
        re-ranking rules read it."""
        return _age_hours(self.ids, self.now_ms)

    def take(self, rows: I64) -> Candidates:
        """These candidates' rows, in the order given (their features only)."""
        return Candidates(
            self.ids[rows],
            self.authors[rows],
            self.likes[rows],
            self.social[rows],
            self.affinity[rows],
            self.author_rate[rows],
            self.top_author[rows],
            self.now_ms,
        )

    def own(self, viewer: int) -> F64:
        """1.0 for the viewer's own posts."""
        own: F64 = (self.authors == viewer).astype(np.float64)
        return own

    def matrix(self, viewer: int) -> F64:
        """The model's inputs (NAMES), one row per candidate."""
        return _inputs(
            self.age_hours, self.likes, self.social, self.affinity, self.own(viewer), self.author_rate
        )


def _age_hours(ids: I64, now_ms: int | I64) -> F64:
    """Hours from each post's making (its id's time) to `now_ms`, never negative."""
    made = (ids >> SEQUENCE_BITS) + EPOCH_MS
    age: F64 = np.maximum(now_ms - made, 0) / 3_600_000.0
    return age


def _inputs(age: F64, likes: F64, social: F64, affinity: F64, own: F64, author_rate: F64) -> F64:
    """The model's inputs (NAMES) from the raw features, one row per post: one formula for the
    ranker and the impression log, so a model trains on what it scores."""
    velocity = likes / (age + 2.0)
    x: F64 = np.column_stack(
        (
            age,
            np.log1p(likes),
            np.log1p(velocity),
            np.log1p(social),
            np.log1p(affinity),
            own,
            np.log1p(author_rate),
        )
    )
    return x


def _days(now_ms: int) -> tuple[date, date]:
    today = datetime.fromtimestamp(now_ms / 1000, tz=UTC).date()
    return today - timedelta(days=AFFINITY_DAYS - 1), today - timedelta(days=AUTHOR_RATE_DAYS - 1)


def _lookup(keys: I64, sorted_keys: I64, values: F64) -> F64:
    """The value of each key of `keys` in `sorted_keys` (ascending, aligned with values), else 0."""
    n = len(sorted_keys)
    if not n:
        return np.zeros(len(keys), dtype=np.float64)
    at = sorted_keys.searchsorted(keys)
    np.minimum(at, n - 1, out=at)
    out: F64 = np.where(sorted_keys[at] == keys, values[at], 0.0)
    return out


def _ints(raw: bytes | None) -> I64:
    """A column of the statement: big-endian bigints (int8send), as native int64."""
    out: I64 = np.frombuffer(raw or b"", dtype=">i8").astype(np.int64)
    return out


def _floats(raw: bytes | None, sent_as: str = ">f8") -> F64:
    """A column of the statement: big-endian numbers (float8send, int8send: ">i8", int4send:
    ">i4"), as float64."""
    out: F64 = np.frombuffer(raw or b"", dtype=sent_as).astype(np.float64)
    return out


def _candidates(row: asyncpg.Record | None, viewer: int, now_ms: int) -> Candidates:
    columns = (None,) * 9 if row is None else tuple(row)
    ids, authors, likes, proven, proof, rated, rates, liked, liked_count = columns[:9]
    # The page's columns (_PAGE), when the statement has them.
    shown = Shown(columns[9] or [], _ints(columns[10])) if len(columns) > 9 else None
    post_ids, author_ids = _ints(ids), _ints(authors)
    affinity_authors, affinity_likes = _ints(liked), _floats(liked_count, ">i4")
    # The viewer's top-3 affinity authors (not themselves, with likes in the 30 days): most
    # liked first, equal counts by author id, as the statement used to pick them. A handful of
    # authors: Python, not numpy calls.
    top = sorted(
        (-n, a)
        for a, n in zip(affinity_authors.tolist(), affinity_likes.tolist(), strict=True)
        if a != viewer and n > 0
    )[:3]
    top_author: B = np.zeros(len(author_ids), dtype=np.bool_)
    for _, author in top:
        top_author |= author_ids == author
    return Candidates(
        ids=post_ids,
        authors=author_ids,
        likes=_floats(likes, ">i8"),
        social=_lookup(post_ids, _ints(proven), _floats(proof, ">i4")),
        affinity=_lookup(author_ids, affinity_authors, affinity_likes),
        author_rate=_lookup(author_ids, _ints(rated), _floats(rates)),
        top_author=top_author,
        now_ms=now_ms,
        shown=shown,
    )


def no_candidates(now_ms: int) -> Candidates:
    """No candidates at all."""
    return _candidates(None, 0, now_ms)


class Statements(Protocol):
    """Where a statement runs: the pool, or the read path's held connections (store/pool.Lanes),
    which skip the pool's checkout (more client CPU than a first page's numpy work)."""

    async def fetch(self, query: str, *args: object) -> list[asyncpg.Record]: ...


async def _row(db: Statements, query: str, *args: object) -> asyncpg.Record | None:
    rows = await db.fetch(query, *args)
    return rows[0] if rows else None


async def read_candidates(db: Statements, viewer: int, now_ms: int, window_ms: int, cap: int) -> Candidates:
    """The viewer's candidates within the window (newest `cap`), with their features."""
    row = await _row(db, CANDIDATES, viewer, *_days(now_ms), lowest_id_at(now_ms - window_ms), cap)
    return _candidates(row, viewer, now_ms)


async def read_among(db: Statements, viewer: int, ids: Sequence[int], now_ms: int, cap: int) -> Candidates:
    """The viewer's candidates among given ids (those they may see, newest `cap`), with their features."""
    row = await _row(db, AMONG, viewer, *_days(now_ms), list(ids), cap)
    return _candidates(row, viewer, now_ms)


async def read_features(db: Statements, viewer: int, ids: Sequence[int], now_ms: int) -> Candidates:
    """Features of given posts for a viewer (newest first; missing posts left out)."""
    row = await _row(db, OF_POSTS, viewer, *_days(now_ms), list(ids))
    return _candidates(row, viewer, now_ms)


# The features of impressions, each its own (viewer, post, day shown): a flush of the impression
# log reads all its pages in one statement (impressions.py), where one statement per page cost
# the API more client CPU than the pages' reads. Row by row, the same values OF_POSTS gives a
# page: the post's likes; social proof counted from the side that is cheaper for that post (its
# likers, each probed in the viewer's follows, or the viewer's followees, each probed in the
# post's likes), both counting the viewer's followees who liked it, by LIKERS_PER_FOLLOWEE as
# there; the viewer's affinity to the author over AFFINITY_DAYS (a primary-key range); the
# author's rate. Rows whose post is gone are left out: the first column, the rows' numbers (from
# 1), says which remain. Columns as OF_POSTS sends them (fixed-width, big-endian), in row order.
OF_IMPRESSIONS = f"""
SELECT
    string_agg(int4send(t.i::int4), '' ORDER BY t.i),
    string_agg(int8send(p.author_id), '' ORDER BY t.i),
    string_agg(int8send(p.like_count), '' ORDER BY t.i),
    string_agg(int4send(CASE
        WHEN p.like_count <= 0 THEN 0
        WHEN p.like_count <= {LIKERS_PER_FOLLOWEE} * (SELECT following_count FROM users WHERE id = t.viewer)
        THEN (SELECT count(*)::int FROM likes l
              WHERE l.post_id = p.id
                AND EXISTS (SELECT 1 FROM follows f
                            WHERE f.follower_id = t.viewer AND f.followee_id = l.user_id))
        ELSE (SELECT count(*)::int FROM follows f
              WHERE f.follower_id = t.viewer
                AND EXISTS (SELECT 1 FROM likes l WHERE l.user_id = f.followee_id AND l.post_id = p.id))
        END), '' ORDER BY t.i),
    string_agg(int4send(coalesce(
        (SELECT sum(a.likes)::int FROM affinity a
         WHERE a.user_id = t.viewer AND a.author_id = p.author_id AND a.day >= t.affinity_since), 0)), ''
        ORDER BY t.i),
    string_agg(float8send(coalesce(
        (SELECT {_rate("t.rate_since")} FROM author_recent r WHERE r.author_id = p.author_id), 0)), ''
        ORDER BY t.i)
FROM unnest($1::bigint[], $2::bigint[], $3::date[], $4::date[])
     WITH ORDINALITY AS t(viewer, post_id, affinity_since, rate_since, i)
JOIN posts p ON p.id = t.post_id
"""


async def read_impressions(
    db: Statements, viewers: Sequence[int], post_ids: Sequence[int], shown_ms: Sequence[int]
) -> tuple[I64, F64]:
    """Model inputs of impressions (viewer, post, time shown, aligned), as they were when shown:
    the places (0-based) of those whose post still exists, and their rows of inputs (NAMES)."""
    since = {ms: _days(ms) for ms in set(shown_ms)}
    row = await _row(
        db,
        OF_IMPRESSIONS,
        list(viewers),
        list(post_ids),
        [since[ms][0] for ms in shown_ms],
        [since[ms][1] for ms in shown_ms],
    )
    places, authors, likes, social, affinity, rates = (None,) * 6 if row is None else row
    at: I64 = np.frombuffer(places or b"", dtype=">i4").astype(np.int64) - 1
    ids = np.asarray(post_ids, dtype=np.int64)[at]
    now = np.asarray(shown_ms, dtype=np.int64)[at]
    own: F64 = (_ints(authors) == np.asarray(viewers, dtype=np.int64)[at]).astype(np.float64)
    x = _inputs(
        _age_hours(ids, now),
        _floats(likes, ">i8"),
        _floats(social, ">i4"),
        _floats(affinity, ">i4"),
        own,
        _floats(rates),
    )
    return at, x
