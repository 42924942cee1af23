"""The synthetic world: generation invariants (pure) and loading into a real PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import numpy as np
import pytest
from argon2 import PasswordHasher
from hypothesis import given
from hypothesis import strategies as st
from redis.asyncio import Redis

from homefeed.feed.config import Settings
from homefeed.feed.ids import MAX_ID, id_ms, make_id
from homefeed.feed.store.pool import create_pool
from homefeed.seed.world import (
    SEEDED_PASSWORD,
    SEEDED_PASSWORD_HASH,
    SeedError,
    SeedParams,
    World,
    generate,
    mint_ids,
    seed,
)
from tests.conftest import ServicesFactory

NOW_MS = 1_750_000_000_000  # pinned so two generations are comparable to the millisecond
DAY_MS = 86_400_000


def params(users: int = 300, seed_: int = 7, **more: float | bool) -> SeedParams:
    return SeedParams(users=users, seed=seed_, now_ms=NOW_MS, **more)  # type: ignore[arg-type]


def arrays(world: World) -> list[np.ndarray[tuple[int, ...], np.dtype[np.int64]]]:
    return [
        world.user_ids,
        world.user_created_ms,
        world.user_last_seen_ms,
        world.follow_src,
        world.follow_dst,
        world.follow_ms,
        world.followers_order,
        world.post_author,
        world.post_ids,
        world.post_text_bits,
    ]


def check_invariants(world: World) -> None:
    n = world.users
    src, dst = world.follow_src, world.follow_dst
    # No self-follows, no duplicates, sorted in follows' primary-key order.
    assert not np.any(src == dst)
    keys = src * n + dst
    assert np.all(np.diff(keys) > 0)
    assert np.all((src >= 0) & (src < n) & (dst >= 0) & (dst < n))
    # Counters are the degrees.
    assert np.array_equal(world.follower_count, np.bincount(dst, minlength=n))
    assert np.array_equal(world.following_count, np.bincount(src, minlength=n))
    assert np.all(world.following_count <= n - 1)
    # followers_order is a permutation into (followee, follower) order.
    order = world.followers_order
    assert np.array_equal(np.sort(order), np.arange(world.follows))
    assert np.all(np.diff(dst[order] * n + src[order]) > 0)
    # User ids: increasing with join time, which they encode.
    assert np.all(np.diff(world.user_ids) > 0)
    assert np.array_equal((world.user_ids >> 12) + 1_704_067_200_000, world.user_created_ms)
    assert np.all(world.user_last_seen_ms >= world.user_created_ms)
    assert np.all(world.user_last_seen_ms < world.now_ms)
    # Follows happen after both accounts exist, before now.
    assert np.all(world.follow_ms >= np.maximum(world.user_created_ms[src], world.user_created_ms[dst]))
    assert np.all(world.follow_ms < world.now_ms)
    # Post ids: unique, increasing (so in time order), below 2**53, in the past, after the author joined.
    ids = world.post_ids
    assert np.all(np.diff(ids) > 0)
    assert np.all((ids > 0) & (ids <= MAX_ID))
    if world.posts:
        assert id_ms(int(ids[-1])) < world.now_ms
        assert id_ms(int(ids[0])) >= world.now_ms - 31 * DAY_MS
        assert np.all(((ids >> 12) + 1_704_067_200_000) > world.user_created_ms[world.post_author])
    for post in range(min(world.posts, 50)):
        assert 1 <= len(world.post_text(post)) <= 280


def test_generation_is_deterministic_per_seed() -> None:
    a, b, c = generate(params()), generate(params()), generate(params(seed_=8))
    for x, y in zip(arrays(a), arrays(b), strict=True):
        assert np.array_equal(x, y)
    assert not np.array_equal(a.follow_dst, c.follow_dst) or not np.array_equal(a.follow_src, c.follow_src)
    assert not np.array_equal(a.post_ids, c.post_ids)


def test_generation_invariants_at_300_users() -> None:
    world = generate(params())
    check_invariants(world)
    assert world.follows > 300 * 10
    # Roughly three quarters are active.
    assert 0.6 < world.active_users() / world.users < 0.9
    # Popularity is skewed: the top account has many times the median follower count.
    assert world.follower_count.max() > 5 * np.median(world.follower_count)
    # Handles are fixed-width and unique.
    handles = {world.handle(u) for u in range(world.users)}
    assert len(handles) == world.users
    assert world.handle(123) == "user000123"


def test_mint_ids_matches_make_id_and_breaks_ties() -> None:
    ms = np.array([NOW_MS - 5, NOW_MS - 5, NOW_MS - 5, NOW_MS - 4, NOW_MS], dtype=np.int64)
    ids = mint_ids(ms)
    assert ids.tolist() == [
        make_id(NOW_MS - 5, 0),
        make_id(NOW_MS - 5, 1),
        make_id(NOW_MS - 5, 2),
        make_id(NOW_MS - 4, 0),
        make_id(NOW_MS, 0),
    ]
    # More than 4096 in one millisecond spill over instead of colliding.
    crowded = mint_ids(np.full(5000, NOW_MS, dtype=np.int64))
    assert np.all(np.diff(crowded) > 0)


def test_the_shared_password_hash_is_for_password() -> None:
    assert PasswordHasher().verify(SEEDED_PASSWORD_HASH, SEEDED_PASSWORD)


def test_invalid_params_are_refused() -> None:
    with pytest.raises(SeedError, match="--users"):
        generate(params(users=0))
    with pytest.raises(SeedError, match="--posts-per-user"):
        generate(params(posts_per_user=-1))


@given(
    users=st.integers(min_value=1, max_value=120),
    seed_=st.integers(min_value=0, max_value=2**32),
    posts_per_user=st.floats(min_value=0, max_value=8),
    median=st.floats(min_value=1, max_value=400),
)
def test_generation_invariants_hold_for_any_small_world(
    users: int, seed_: int, posts_per_user: float, median: float
) -> None:
    world = generate(params(users=users, seed_=seed_, posts_per_user=posts_per_user, median_followees=median))
    check_invariants(world)
    if users > 1:
        assert np.all(world.following_count >= 1)


# ----------------------------------------------------------------------------------------------
# Loading


@pytest.fixture
async def pool(settings_: Settings) -> AsyncIterator[asyncpg.Pool]:
    assert settings_.database_url
    opened = await create_pool(settings_.database_url, min_size=1, max_size=2)
    try:
        yield opened
    finally:
        await opened.close()


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


async def test_seed_loads_the_world_exactly(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        before = await catalog(conn)
    report = await seed(pool, params())
    world = generate(params())
    assert (report.users, report.follows, report.posts) == (world.users, world.follows, world.posts)
    assert report.max_followers == int(world.follower_count.max())
    assert [p.phase for p in report.phases] == [
        "generating",
        "users",
        "follows",
        "followers",
        "posts",
        "indexes",
        "vacuum",
    ] + (["fan-out"] if report.fan_out == "timelines rebuilt" else [])

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
    redis = Redis.from_url(settings_.redis_url)
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


async def test_seeded_timelines_equal_the_pull_reference(make_services: ServicesFactory) -> None:
    """The bulk fan-out of a seeded world gives every active user the feed PostgreSQL gives."""
    services = await make_services(celebrity_threshold=40)
    params = SeedParams(users=300, seed=11, posts_per_user=4)
    report = await seed(services.pool, params, redis=services.redis, settings=services.settings)
    assert "timelines built" in report.fan_out
    pulled = await services.pool.fetchval("SELECT count(*) FROM users WHERE fanout_mode = 1")
    assert pulled == await services.pool.fetchval("SELECT count(*) FROM users WHERE follower_count >= 40")
    users = [r["id"] for r in await services.pool.fetch("SELECT id FROM users ORDER BY id LIMIT 40")]
    for user in users:
        built = await services.redis.exists(services.feeds.keys.timeline(user))
        hybrid, reference = [], []
        before = None
        while True:
            page = await services.feeds.home(user, 7, before)
            hybrid += page.post_ids
            if not page.has_next:
                break
            before = page.post_ids[-1]
        before = None
        while True:
            page = await services.feeds.pull_page(user, 7, before)
            reference += page.post_ids
            if not page.has_next:
                break
            before = page.post_ids[-1]
        assert hybrid == reference, f"user {user} (timeline built: {bool(built)})"
