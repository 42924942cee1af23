"""Bulk loading of a generated world into PostgreSQL: COPY in one transaction, then vacuum.

Per-row foreign-key triggers and random-order index inserts dominate a bulk load, so
the big tables' secondary indexes and foreign keys are dropped for the COPY and
restored after it (an index built by sorting, a key checked once over the table).
Edge tables are truncated in the loading transaction, which lets COPY FREEZE write
their rows frozen and all-visible.

Every seeded user's password is `password`: all rows share one precomputed argon2id
hash, so seeding never hashes once per user.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import numpy as np

from homefeed.seed.errors import SeedError
from homefeed.seed.generate import I64, World
from homefeed.seed.progress import Clock, SeedProgress

# argon2id (argon2-cffi defaults: m=65536, t=3, p=4) of the password "password".
SEEDED_PASSWORD = "password"
SEEDED_PASSWORD_HASH = (
    "$argon2id$v=19$m=65536,t=3,p=4$diZEdmqvohZ48vsIghcsCQ$OBrbbuzp1vCnYTXtZACt6H1M0UUaiiOiXJ77lFhesjo"
)

# PostgreSQL's binary timestamps count microseconds from 2000-01-01T00:00:00Z.
_PG_EPOCH_MS = 946_684_800_000
# Tables the seed fills, and the ones a reset empties too (they reference users or posts).
SEEDED_TABLES = ("users", "posts", "follows", "followers")
RESET_TABLES = (
    *SEEDED_TABLES,
    "handles",
    "outbox",
    "likes",
    "blocks",
    "mutes",
    "affinity",
    "author_days",
    "author_recent",
    "impressions",
)
# Big tables whose secondary indexes and foreign keys are dropped during COPY and rebuilt after.
_BULK_TABLES = ("posts", "follows", "followers")

NOT_EMPTY = "the users table is not empty: pass --reset to replace everything with a new world"


async def is_empty(pool: asyncpg.Pool) -> bool:
    """Whether no user exists yet."""
    return not await pool.fetchval("SELECT EXISTS (SELECT 1 FROM users)")


async def load(pool: asyncpg.Pool, world: World, clock: Clock, *, reset: bool) -> None:
    """COPY the world in one transaction; SeedError if users exist (after the reset, if asked).

    With `reset`, the seeded tables (and outbox, likes, blocks, mutes) are truncated first.
    A failure leaves the database as it was.
    """
    async with pool.acquire() as conn, conn.transaction():
        if reset:
            # CASCADE: any table added later that references these is emptied with them.
            await conn.execute(f"TRUNCATE {', '.join(RESET_TABLES)} CASCADE")
        # Nobody signs up between the check and the load.
        await conn.execute("LOCK TABLE users IN SHARE ROW EXCLUSIVE MODE")
        if await conn.fetchval("SELECT EXISTS (SELECT 1 FROM users)"):
            raise SeedError(NOT_EMPTY)
        # Empty already; truncating them in this transaction is what lets COPY FREEZE write the
        # edge rows frozen and all-visible: no hint-bit rewrite of every page on first read, and
        # index-only scans over follower lists (fan-out) from the start.
        await conn.execute("TRUNCATE follows, followers")
        await conn.execute("SET LOCAL maintenance_work_mem = '512MB'")
        deferred = await _drop_deferrable(conn)
        await _copy_users(conn, world, clock)
        with clock.phase("follows", world.follows):
            rows = _edge_rows(world, world.follow_src, world.follow_dst, None, clock.progress)
            columns = ["follower_id", "followee_id", "created_at"]
            await conn.copy_to_table("follows", source=rows, columns=columns, format="binary", freeze=True)
        with clock.phase("followers", world.follows):
            rows = _edge_rows(
                world, world.follow_dst, world.follow_src, world.followers_order, clock.progress
            )
            columns = ["followee_id", "follower_id", "created_at"]
            await conn.copy_to_table("followers", source=rows, columns=columns, format="binary", freeze=True)
        await _copy_posts(conn, world, clock)
        with clock.phase("indexes", len(deferred)):
            for statement in deferred:
                await conn.execute(statement)
                clock.progress.advance(1)


async def vacuum(pool: asyncpg.Pool, clock: Clock) -> None:
    """Statistics for the planner, and the visibility map for users and posts.

    The edge tables were frozen by COPY, so vacuum skips their pages.
    """
    with clock.phase("vacuum", len(SEEDED_TABLES)):
        async with pool.acquire() as conn:
            for table in SEEDED_TABLES:
                await conn.execute(f"VACUUM (ANALYZE) {table}")
                clock.progress.advance(1)


async def _drop_deferrable(conn: asyncpg.pool.PoolConnectionProxy) -> list[str]:
    """Drop the foreign keys and secondary indexes of the big tables; the statements to restore them.

    Primary keys stay: rows arrive in primary-key order, so those are append-only. Definitions
    are read from the catalog, so indexes a later migration adds are handled too.
    """
    tables = list(_BULK_TABLES)
    fkeys = await conn.fetch(
        """SELECT c.conrelid::regclass::text AS tbl, format('%I', c.conname) AS name,
                  pg_get_constraintdef(c.oid) AS def
           FROM pg_constraint c
           WHERE c.contype = 'f' AND c.conrelid IN (SELECT unnest($1::text[])::regclass)
           ORDER BY c.conrelid::regclass::text, c.conname""",
        tables,
    )
    indexes = await conn.fetch(
        """SELECT i.indexrelid::regclass::text AS name, pg_get_indexdef(i.indexrelid) AS def
           FROM pg_index i
           WHERE i.indrelid IN (SELECT unnest($1::text[])::regclass)
             AND NOT i.indisprimary
             AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)
           ORDER BY 1""",
        tables,
    )
    for fk in fkeys:
        await conn.execute(f"ALTER TABLE {fk['tbl']} DROP CONSTRAINT {fk['name']}")
    for index in indexes:
        await conn.execute(f"DROP INDEX {index['name']}")
    restore = [str(index["def"]) for index in indexes]
    restore += [f"ALTER TABLE {fk['tbl']} ADD CONSTRAINT {fk['name']} {fk['def']}" for fk in fkeys]
    return restore


def _pg_time(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


async def _copy_users(conn: asyncpg.pool.PoolConnectionProxy, world: World, clock: Clock) -> None:
    columns = [
        "id", "handle", "display_name", "password_hash", "created_at", "last_seen_at",
        "follower_count", "following_count",
    ]  # fmt: skip
    chunk = 20_000
    with clock.phase("users", world.users):
        for lo in range(0, world.users, chunk):
            hi = min(lo + chunk, world.users)
            records = [
                (
                    int(world.user_ids[u]),
                    world.handle(u),
                    world.display_name(u),
                    SEEDED_PASSWORD_HASH,
                    _pg_time(int(world.user_created_ms[u])),
                    _pg_time(int(world.user_last_seen_ms[u])),
                    int(world.follower_count[u]),
                    int(world.following_count[u]),
                )
                for u in range(lo, hi)
            ]
            await conn.copy_records_to_table("users", records=records, columns=columns)
            clock.progress.advance(hi - lo)


async def _copy_posts(conn: asyncpg.pool.PoolConnectionProxy, world: World, clock: Clock) -> None:
    chunk = 100_000
    with clock.phase("posts", world.posts):
        for lo in range(0, world.posts, chunk):
            hi = min(lo + chunk, world.posts)
            authors = world.user_ids[world.post_author[lo:hi]].tolist()
            ids = world.post_ids[lo:hi].tolist()
            records = [(authors[i], ids[i], world.post_text(lo + i)) for i in range(hi - lo)]
            await conn.copy_records_to_table("posts", records=records, columns=["author_id", "id", "text"])
            clock.progress.advance(hi - lo)


# Binary COPY: signature, flags, header extension length; a field count of -1 ends the data.
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + (0).to_bytes(4, "big") + (0).to_bytes(4, "big")
_COPY_TRAILER = (-1).to_bytes(2, "big", signed=True)
# One row of (bigint, bigint, timestamptz): field count, then (length, value) per field.
_EDGE_ROW = np.dtype(
    [("n", ">i2"), ("l1", ">i4"), ("a", ">i8"), ("l2", ">i4"), ("b", ">i8"), ("l3", ">i4"), ("t", ">i8")]
)


async def _edge_rows(
    world: World, a: I64, b: I64, order: I64 | None, progress: SeedProgress, chunk: int = 500_000
) -> AsyncIterator[bytes]:
    """Binary COPY data for follow edges as rows (user id a, user id b, follow time), in `order`.

    Built by numpy a chunk at a time: asyncpg's record encoder works row by row in Python,
    while these buffers are built at memory speed, leaving the server's insert as the real cost.
    """
    yield _COPY_HEADER
    for lo in range(0, a.shape[0], chunk):
        hi = min(lo + chunk, a.shape[0])
        pick = order[lo:hi] if order is not None else slice(lo, hi)
        rows = np.empty(hi - lo, dtype=_EDGE_ROW)
        rows["n"] = 3
        rows["l1"] = 8
        rows["a"] = world.user_ids[a[pick]]
        rows["l2"] = 8
        rows["b"] = world.user_ids[b[pick]]
        rows["l3"] = 8
        rows["t"] = (world.follow_ms[pick] - _PG_EPOCH_MS) * 1000
        yield rows.tobytes()
        progress.advance(hi - lo)
    yield _COPY_TRAILER
