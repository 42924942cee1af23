"""Seeding end to end: the report, refusing a used database, resets and their Redis keys."""

from __future__ import annotations

import asyncpg
import pytest
from redis.asyncio import Redis

from homefeed.feed.config import Settings
from homefeed.feed.redis_client import open_redis
from homefeed.seed.errors import SeedError
from homefeed.seed.generate import SeedParams, generate
from homefeed.seed.run import seed
from tests.seed.worlds import NOW_MS, params


async def test_seed_reports_the_world_and_each_phase(pool: asyncpg.Pool) -> None:
    report = await seed(pool, params())
    world = generate(params())
    assert (report.users, report.follows, report.posts) == (world.users, world.follows, world.posts)
    assert report.max_followers == int(world.follower_count.max())
    assert report.active_users == world.active_users()
    assert [p.phase for p in report.phases] == [
        "generating",
        "users",
        "follows",
        "followers",
        "posts",
        "indexes",
        "vacuum",
    ]
    assert report.fan_out.startswith("skipped (no Redis given)")
    assert "fan-out: skipped" in report.summary()


async def test_seed_refuses_a_non_empty_database_unless_reset(pool: asyncpg.Pool) -> None:
    await seed(pool, params(users=50))
    with pytest.raises(SeedError, match="--reset"):
        await seed(pool, params(users=60))
    async with pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO outbox (kind, actor_id, subject_id) SELECT 'post', author_id, id FROM posts LIMIT 3"
        )
    report = await seed(pool, SeedParams(users=60, seed=3, now_ms=NOW_MS, reset=True))
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM users") == 60 == report.users
        assert await conn.fetchval("SELECT count(*) FROM follows") == report.follows
        assert await conn.fetchval("SELECT count(*) FROM outbox") == 0


async def test_reset_drops_the_old_worlds_redis_keys(pool: asyncpg.Pool, settings_: Settings) -> None:
    assert settings_.redis_url
    redis = await open_redis(settings_.redis_url)
    other = f"not-{settings_.redis_prefix}:kept"
    try:
        await seed(pool, params(users=40))
        await redis.set(f"{settings_.redis_prefix}:timeline:1", "stale")
        await redis.set(other, "kept")
        report = await seed(pool, params(users=40, reset=True), redis=redis, settings=settings_)
        assert report.notes == ()
        assert await redis.exists(f"{settings_.redis_prefix}:timeline:1") == 0
        assert await redis.get(other) == b"kept"
    finally:
        await redis.delete(other)
        await redis.aclose()


async def test_reset_with_redis_down_still_seeds_and_says_so(pool: asyncpg.Pool, settings_: Settings) -> None:
    await seed(pool, params(users=40))
    unreachable = Redis.from_url("redis://127.0.0.1:1/0")
    try:
        report = await seed(pool, params(users=40, reset=True), redis=unreachable, settings=settings_)
    finally:
        await unreachable.aclose()
    assert report.users == 40
    assert any("Redis" in note for note in report.notes)
