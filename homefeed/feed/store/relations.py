"""Follows, blocks and mutes in PostgreSQL.

Every change is idempotent. A follow is stored twice, by follower and by
followee, in one transaction, so each table can be distributed by its leading
column. Follow and block take a transaction lock on the pair so that a follow
can never slip in beside a concurrent block.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from homefeed.feed.errors import Forbidden, InvalidInput, NotFound
from homefeed.feed.store.marks import ReplicaReads, WriteMarks

# Casts: without them PostgreSQL infers text parameters from `||` and rejects the integer ids.
_PAIR_LOCK = """SELECT pg_advisory_xact_lock(hashtextextended(
    least($1::bigint, $2::bigint)::text || ':' || greatest($1::bigint, $2::bigint)::text, 0))"""

# Removes the follow a -> b (both tables, both counters) and queues its timeline clean-up.
_UNFOLLOW = """
    WITH gone AS (
        DELETE FROM follows WHERE follower_id = $1 AND followee_id = $2 RETURNING followee_id
    ), rev AS (
        DELETE FROM followers WHERE followee_id = $2 AND follower_id = $1
    ), c1 AS (
        UPDATE users SET follower_count = follower_count - 1
        WHERE id = $2 AND EXISTS (SELECT 1 FROM gone)
    ), c2 AS (
        UPDATE users SET following_count = following_count - 1
        WHERE id = $1 AND EXISTS (SELECT 1 FROM gone)
    ), job AS (
        INSERT INTO outbox (kind, actor_id, subject_id) SELECT 'unfollow', $1, $2 FROM gone
    )
    SELECT count(*) FROM gone
"""


Conn = asyncpg.Connection | PoolConnectionProxy


class Relations:
    """Reads and writes follows, blocks and mutes."""

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

    async def _require_other_user(self, conn: Conn, actor: int, target: int, verb: str) -> None:
        if actor == target:
            raise InvalidInput(f"you cannot {verb} yourself")
        if not await conn.fetchval("SELECT EXISTS (SELECT 1 FROM users WHERE id = $1)", target):
            raise NotFound("no such user")

    async def follow(self, follower: int, followee: int) -> None:
        """Follow; FORBIDDEN across a block either way."""
        async with self._pool.acquire() as conn, conn.transaction():
            await self._require_other_user(conn, follower, followee, "follow")
            await conn.execute(_PAIR_LOCK, follower, followee)
            blocked = await conn.fetchval(
                """SELECT EXISTS (SELECT 1 FROM blocks
                   WHERE (blocker_id = $1 AND blocked_id = $2) OR (blocker_id = $2 AND blocked_id = $1))""",
                follower,
                followee,
            )
            if blocked:
                raise Forbidden("you cannot follow this user")
            await conn.execute(
                """WITH ins AS (
                       INSERT INTO follows (follower_id, followee_id) VALUES ($1, $2)
                       ON CONFLICT DO NOTHING RETURNING followee_id
                   ), rev AS (
                       INSERT INTO followers (followee_id, follower_id) SELECT $2, $1 FROM ins
                       ON CONFLICT DO NOTHING
                   ), c1 AS (
                       UPDATE users SET follower_count = follower_count + 1
                       WHERE id = $2 AND EXISTS (SELECT 1 FROM ins)
                   ), c2 AS (
                       UPDATE users SET following_count = following_count + 1
                       WHERE id = $1 AND EXISTS (SELECT 1 FROM ins)
                   )
                   INSERT INTO outbox (kind, actor_id, subject_id) SELECT 'follow', $1, $2 FROM ins""",
                follower,
                followee,
            )
        await self._mark(follower)

    async def unfollow(self, follower: int, followee: int) -> None:
        """Stop following; a no-op if not following."""
        async with self._pool.acquire() as conn, conn.transaction():
            await self._require_other_user(conn, follower, followee, "unfollow")
            await conn.execute(_UNFOLLOW, follower, followee)
        await self._mark(follower)

    async def block(self, blocker: int, blocked: int) -> None:
        """Block, removing any follow between the two in both directions."""
        async with self._pool.acquire() as conn, conn.transaction():
            await self._require_other_user(conn, blocker, blocked, "block")
            await conn.execute(_PAIR_LOCK, blocker, blocked)
            inserted = await conn.fetchval(
                """WITH ins AS (
                       INSERT INTO blocks (blocker_id, blocked_id) VALUES ($1, $2)
                       ON CONFLICT DO NOTHING RETURNING 1
                   ), job AS (
                       INSERT INTO outbox (kind, actor_id, subject_id) SELECT 'block', $1, $2 FROM ins
                   )
                   SELECT count(*) FROM ins""",
                blocker,
                blocked,
            )
            if inserted:
                await conn.execute(_UNFOLLOW, blocker, blocked)
                await conn.execute(_UNFOLLOW, blocked, blocker)
        await self._mark(blocker, hides=True)

    async def unblock(self, blocker: int, blocked: int) -> None:
        """Lift a block; restores nothing."""
        async with self._pool.acquire() as conn:
            await self._require_other_user(conn, blocker, blocked, "unblock")
            await conn.execute(
                "DELETE FROM blocks WHERE blocker_id = $1 AND blocked_id = $2", blocker, blocked
            )
        await self._mark(blocker)

    async def mute(self, muter: int, muted: int) -> None:
        """Hide the muted user's posts from the muter's feed."""
        async with self._pool.acquire() as conn:
            await self._require_other_user(conn, muter, muted, "mute")
            await conn.execute(
                """INSERT INTO mutes (muter_id, muted_id) VALUES ($1, $2) ON CONFLICT DO NOTHING""",
                muter,
                muted,
            )
        await self._mark(muter)

    async def unmute(self, muter: int, muted: int) -> None:
        """Show the muted user's posts again."""
        async with self._pool.acquire() as conn:
            await self._require_other_user(conn, muter, muted, "unmute")
            await conn.execute("DELETE FROM mutes WHERE muter_id = $1 AND muted_id = $2", muter, muted)
        await self._mark(muter)

    async def follows_among(self, viewer: int, user_ids: Sequence[int], *, lag_ok: bool = False) -> set[int]:
        """Which of user_ids the viewer follows.

        `lag_ok`: a replica that has replayed the viewer's own last write and the last hiding
        write may answer: a follow or unfollow is the follower's own write, and the only one
        that ends a follow from the other side is a block, a hiding write.
        """
        if lag_ok and self._replicas is not None and user_ids:
            found = await self._replicas.run(
                "follows", viewer, (), lambda pool: _follows_among(pool, viewer, user_ids)
            )
            if found is not None:
                return found
        return await _follows_among(self._pool, viewer, user_ids)

    async def follow_pairs(self, pairs: Sequence[tuple[int, int]]) -> set[tuple[int, int]]:
        """Which (follower, followee) pairs are follows: one query for many viewers at once."""
        rows = await self._pool.fetch(
            """SELECT f.follower_id, f.followee_id FROM follows f
               JOIN unnest($1::bigint[], $2::bigint[]) AS q(a, b)
                 ON f.follower_id = q.a AND f.followee_id = q.b""",
            [a for a, _ in pairs],
            [b for _, b in pairs],
        )
        return {(r["follower_id"], r["followee_id"]) for r in rows}

    async def blocked_either_way(self, a: int, b: int) -> bool:
        """Whether a blocks b or b blocks a."""
        return bool(
            await self._pool.fetchval(
                """SELECT EXISTS (SELECT 1 FROM blocks
                   WHERE (blocker_id = $1 AND blocked_id = $2) OR (blocker_id = $2 AND blocked_id = $1))""",
                a,
                b,
            )
        )


async def _follows_among(pool: asyncpg.Pool, viewer: int, user_ids: Sequence[int]) -> set[int]:
    rows = await pool.fetch(
        "SELECT followee_id FROM follows WHERE follower_id = $1 AND followee_id = ANY($2::bigint[])",
        viewer,
        list(user_ids),
    )
    return {r["followee_id"] for r in rows}
