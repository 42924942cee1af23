"""Loading a generated world into a real PostgreSQL: exact rows, restored indexes, frozen pages."""

from __future__ import annotations

import asyncpg
import pytest
from argon2 import PasswordHasher

from homefeed.feed.ids import MAX_ID
from homefeed.seed.errors import SeedError
from homefeed.seed.generate import generate
from homefeed.seed.load import SEEDED_PASSWORD, SEEDED_PASSWORD_HASH, load, vacuum
from homefeed.seed.progress import Clock, NullProgress
from tests.seed.worlds import params


def test_the_shared_password_hash_is_for_password() -> None:
    assert PasswordHasher().verify(SEEDED_PASSWORD_HASH, SEEDED_PASSWORD)


async def catalog(conn: asyncpg.pool.PoolConnectionProxy) -> list[str]:
    """Every index and constraint definition of the seeded tables."""
    tables = ["users", "posts", "follows", "followers"]
    rows = await conn.fetch(
        """SELECT pg_get_indexdef(indexrelid) AS def FROM pg_index
           WHERE indrelid IN (SELECT unnest($1::text[])::regclass)
           UNION ALL
           SELECT conrelid::regclass::text || ' ' || conname || ' ' || pg_get_constraintdef(oid)
           FROM pg_constraint
           WHERE conrelid IN (SELECT unnest($1::text[])::regclass) AND convalidated""",
        tables,
    )
    return sorted(str(r["def"]) for r in rows)


async def test_load_copies_the_world_exactly(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        before = await catalog(conn)
    world = generate(params())
    clock = Clock(NullProgress())
    await load(pool, world, clock, reset=False)
    await vacuum(pool, clock)
    assert [p.phase for p in clock.phases] == ["users", "follows", "followers", "posts", "indexes", "vacuum"]

    async with pool.acquire() as conn:
        # Indexes and foreign keys dropped for the load are all back, validated.
        assert await catalog(conn) == before
        assert await conn.fetchval("SELECT count(*) FROM users") == world.users
        assert await conn.fetchval("SELECT count(*) FROM follows") == world.follows
        assert await conn.fetchval("SELECT count(*) FROM followers") == world.follows
        assert await conn.fetchval("SELECT count(*) FROM posts") == world.posts
        assert await conn.fetchval("SELECT count(*) FROM outbox") == 0
        # followers is the mirror image of follows, created_at included.
        assert (
            await conn.fetchval(
                """SELECT count(*) FROM (
                     (SELECT follower_id, followee_id, created_at FROM follows
                      EXCEPT SELECT follower_id, followee_id, created_at FROM followers)
                     UNION ALL
                     (SELECT follower_id, followee_id, created_at FROM followers
                      EXCEPT SELECT follower_id, followee_id, created_at FROM follows)) d"""
            )
            == 0
        )
        # Counters equal the edges actually stored.
        wrong = await conn.fetchval(
            """SELECT count(*) FROM users u
               WHERE follower_count <> (SELECT count(*) FROM followers f WHERE f.followee_id = u.id)
                  OR following_count <> (SELECT count(*) FROM follows f WHERE f.follower_id = u.id)"""
        )
        assert wrong == 0
        assert await conn.fetchval("SELECT count(*) FROM follows WHERE follower_id = followee_id") == 0
        # Post ids encode their time, are below 2**53, and follow their author's join.
        assert await conn.fetchval("SELECT max(id) FROM posts") <= MAX_ID
        late = await conn.fetchval(
            "SELECT count(*) FROM posts p JOIN users u ON u.id = p.author_id WHERE p.id <= u.id"
        )
        assert late == 0
        # Live ids minted now are above every seeded one.
        assert await conn.fetchval("SELECT next_id() > (SELECT max(id) FROM posts)")
        row = await conn.fetchrow("SELECT handle, password_hash FROM users ORDER BY id LIMIT 1")
        assert row is not None
        assert row["handle"] == "user000000"
        assert row["password_hash"] == SEEDED_PASSWORD_HASH
        # Loaded frozen and vacuumed: every page all-visible, so index-only scans skip the heap.
        for table in ("follows", "followers", "posts"):
            pages = await conn.fetchrow(
                "SELECT relpages, relallvisible FROM pg_class WHERE oid = $1::text::regclass", table
            )
            assert pages is not None and pages["relpages"] == pages["relallvisible"] > 0
        ids = [r["id"] for r in await conn.fetch("SELECT id FROM posts ORDER BY id")]
        assert ids == world.post_ids.tolist()


async def test_load_refuses_a_database_with_users_and_changes_nothing(pool: asyncpg.Pool) -> None:
    await load(pool, generate(params(users=20)), Clock(NullProgress()), reset=False)
    with pytest.raises(SeedError, match="--reset"):
        await load(pool, generate(params(users=30)), Clock(NullProgress()), reset=False)
    assert await pool.fetchval("SELECT count(*) FROM users") == 20
    # Its indexes and keys, dropped inside the failed transaction, are back with the rollback.
    assert await pool.fetchval(
        "SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND conrelid = 'follows'::regclass"
    )
