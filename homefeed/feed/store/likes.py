"""Likes in PostgreSQL, with the post's like count and the ranked feed's aggregates (affinity,
the author's recent engagement: author_recent, migration 0009) kept in step in the same statement."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from homefeed.feed.errors import Forbidden, NotFound
from homefeed.feed.store.marks import ReplicaReads, WriteMarks

Conn = asyncpg.Connection | PoolConnectionProxy


class Likes:
    """Reads and writes likes."""

    def __init__(
        self, pool: asyncpg.Pool, marks: WriteMarks | None = None, replicas: ReplicaReads | None = None
    ) -> None:
        self._pool = pool
        self._marks = marks
        # Where reads that accept replica lag (`lag_ok`) may go.
        self._replicas = replicas

    async def _mark(self, user_id: int, *, hides: bool = False) -> None:
        # Only with replicas: their readers must see this write (homefeed/feed/replicas.py).
        if self._marks is not None:
            await self._marks.wrote(user_id, hides=hides)

    async def _check(self, conn: Conn, user_id: int, post_id: int) -> None:
        row = await conn.fetchrow(
            """SELECT p.author_id,
                      EXISTS (SELECT 1 FROM blocks b
                              WHERE (b.blocker_id = $1 AND b.blocked_id = p.author_id)
                                 OR (b.blocker_id = p.author_id AND b.blocked_id = $1)) AS blocked
               FROM posts p WHERE p.id = $2 AND p.deleted_at IS NULL""",
            user_id,
            post_id,
        )
        if row is None:
            raise NotFound("no such post")
        if row["blocked"]:
            raise Forbidden("you cannot interact with this post")

    async def like(self, user_id: int, post_id: int) -> None:
        """Like a live post; liking twice counts once."""
        async with self._pool.acquire() as conn, conn.transaction():
            await self._check(conn, user_id, post_id)
            await conn.execute(
                """WITH ins AS (
                       INSERT INTO likes (user_id, post_id) VALUES ($1, $2)
                       ON CONFLICT DO NOTHING RETURNING post_id, created_at
                   ), counted AS (
                       UPDATE posts SET like_count = like_count + 1
                       WHERE id IN (SELECT post_id FROM ins)
                       RETURNING author_id
                   ), affinity AS (
                       INSERT INTO affinity AS a (user_id, author_id, day, likes)
                       SELECT $1, c.author_id, (i.created_at AT TIME ZONE 'UTC')::date, 1
                       FROM counted c, ins i
                       ON CONFLICT (user_id, author_id, day) DO UPDATE SET likes = a.likes + 1
                   )
                   SELECT author_recent_add(c.author_id, (i.created_at AT TIME ZONE 'UTC')::date, 0, 1)
                   FROM counted c, ins i""",
                user_id,
                post_id,
            )
        await self._mark(user_id)

    async def unlike(self, user_id: int, post_id: int) -> None:
        """Remove a like; a no-op if there was none."""
        async with self._pool.acquire() as conn, conn.transaction():
            await self._check(conn, user_id, post_id)
            await conn.execute(
                """WITH gone AS (
                       DELETE FROM likes WHERE user_id = $1 AND post_id = $2 RETURNING post_id, created_at
                   ), counted AS (
                       UPDATE posts SET like_count = like_count - 1
                       WHERE id IN (SELECT post_id FROM gone)
                       RETURNING author_id
                   ), affinity AS (
                       -- The like is taken off the day it was counted on.
                       UPDATE affinity a SET likes = greatest(a.likes - 1, 0)
                       FROM counted c, gone g
                       WHERE a.user_id = $1 AND a.author_id = c.author_id
                         AND a.day = (g.created_at AT TIME ZONE 'UTC')::date
                   )
                   SELECT author_recent_add(c.author_id, (g.created_at AT TIME ZONE 'UTC')::date, 0, -1)
                   FROM counted c, gone g""",
                user_id,
                post_id,
            )
        await self._mark(user_id)

    async def liked_among(self, user_id: int, post_ids: Sequence[int], *, lag_ok: bool = False) -> set[int]:
        """Which of post_ids the user has liked.

        `lag_ok`: a replica that has replayed the user's own last write may answer: a like
        or unlike is the liker's own write, and nothing else adds or removes one.
        """
        if lag_ok and self._replicas is not None and post_ids:
            found = await self._replicas.run(
                "likes", user_id, (), lambda pool: _liked_among(pool, user_id, post_ids)
            )
            if found is not None:
                return found
        return await _liked_among(self._pool, user_id, post_ids)

    async def liked_pairs(self, pairs: Sequence[tuple[int, int]]) -> set[tuple[int, int]]:
        """Which (user, post) pairs are likes: one query for many viewers at once."""
        rows = await self._pool.fetch(
            """SELECT l.user_id, l.post_id FROM likes l
               JOIN unnest($1::bigint[], $2::bigint[]) AS q(u, p) ON l.user_id = q.u AND l.post_id = q.p""",
            [u for u, _ in pairs],
            [p for _, p in pairs],
        )
        return {(r["user_id"], r["post_id"]) for r in rows}


async def _liked_among(pool: asyncpg.Pool, user_id: int, post_ids: Sequence[int]) -> set[int]:
    rows = await pool.fetch(
        "SELECT post_id FROM likes WHERE user_id = $1 AND post_id = ANY($2::bigint[])",
        user_id,
        list(post_ids),
    )
    return {r["post_id"] for r in rows}
