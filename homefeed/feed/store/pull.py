"""The pull home feed: newest posts of the viewer and their followees, straight from PostgreSQL.

The reference answer for every other strategy, the fallback past the cached
timeline, and the baseline in benchmarks. Filters apply per author (muted,
blocked either way), so a page is never short because of filtering.
"""

from __future__ import annotations

import asyncpg

from homefeed.feed.store.pool import Lanes

NO_UPPER_BOUND = 2**63 - 1

_AUTHORS_POSTS = """
SELECT p.id
FROM (
    SELECT followee_id AS author_id FROM follows WHERE follower_id = $1
    UNION
    SELECT $1
) a
CROSS JOIN LATERAL (
    SELECT id FROM posts
    WHERE author_id = a.author_id AND deleted_at IS NULL AND id < $2
    ORDER BY id DESC
    LIMIT $3
) p
"""

_FEED = (
    _AUTHORS_POSTS
    + """
WHERE NOT EXISTS (SELECT 1 FROM mutes WHERE muter_id = $1 AND muted_id = a.author_id)
  AND NOT EXISTS (SELECT 1 FROM blocks WHERE blocker_id = $1 AND blocked_id = a.author_id)
  AND NOT EXISTS (SELECT 1 FROM blocks WHERE blocker_id = a.author_id AND blocked_id = $1)
ORDER BY p.id DESC
LIMIT $3
"""
)

# What a timeline holds: every followed author's posts. Mutes and blocks are applied when
# reading, so lifting a mute needs no rebuild.
_TIMELINE = _AUTHORS_POSTS + "ORDER BY p.id DESC LIMIT $3"

# The pull query on a replica, with whom the viewer follows there: the caller checks that the
# replica had replayed each of those authors' last writes (homefeed/feed/replicas.py).
_FEED_WITH_AUTHORS = f"""
WITH page AS ({_FEED})
SELECT ARRAY(SELECT id FROM page ORDER BY id DESC) AS ids,
       ARRAY(SELECT followee_id FROM follows WHERE follower_id = $1) AS authors
"""


async def pull_ids(pool: asyncpg.Pool | Lanes, viewer: int, before: int | None, limit: int) -> list[int]:
    """Up to `limit` ids of the viewer's home feed older than `before`, newest first."""
    rows = await pool.fetch(_FEED, viewer, NO_UPPER_BOUND if before is None else before, limit)
    return [r["id"] for r in rows]


async def timeline_ids(pool: asyncpg.Pool | Lanes, viewer: int, limit: int) -> list[int]:
    """The newest `limit` post ids of the viewer and everyone they follow, muted or not."""
    rows = await pool.fetch(_TIMELINE, viewer, NO_UPPER_BOUND, limit)
    return [r["id"] for r in rows]


async def pull_ids_with_authors(
    pool: asyncpg.Pool, viewer: int, before: int | None, limit: int
) -> tuple[list[int], list[int]]:
    """`pull_ids`, and the ids of everyone the viewer follows, from one snapshot (one statement)."""
    row = await pool.fetchrow(_FEED_WITH_AUTHORS, viewer, NO_UPPER_BOUND if before is None else before, limit)
    assert row is not None
    return list(row["ids"]), list(row["authors"])
