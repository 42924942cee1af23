"""homefeed.feed.services: opening the engine from settings against the real servers, and closing it."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import jwt
import pytest
from argon2 import PasswordHasher
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from homefeed.feed.auth import Passwords
from homefeed.feed.config import Settings
from homefeed.feed.errors import RateLimited, Unauthenticated
from homefeed.feed.redis_client import open_redis
from homefeed.feed.services import Services, build_services, open_services
from homefeed.feed.store.pool import create_pool

FAST = Passwords(PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))


async def backend_pids(services: Services) -> set[int]:
    """The PostgreSQL backends behind the pool: ask on every connection it will open."""
    rows = await asyncio.gather(
        *(services.pool.fetchval("SELECT pg_backend_pid() FROM pg_sleep(0.05)") for _ in range(12))
    )
    return set(rows)


async def live_pids(settings: Settings, pids: set[int]) -> set[int]:
    assert settings.database_url
    pool = await create_pool(settings.database_url, min_size=1, max_size=1)
    try:
        rows = await pool.fetch("SELECT pid FROM pg_stat_activity WHERE pid = ANY($1::int[])", list(pids))
    finally:
        await pool.close()
    return {r["pid"] for r in rows}


async def redis_client_ids(settings: Settings) -> set[int]:
    assert settings.redis_url
    probe = Redis.from_url(settings.redis_url)
    try:
        clients = await probe.client_list()
    finally:
        await probe.aclose()
    return {int(c["id"]) for c in clients}


@pytest.mark.usefixtures("single_redis")  # finds its connection among one server's clients
async def test_open_services_works_end_to_end_and_close_lets_go(settings_: Settings) -> None:
    services = await open_services(settings_, passwords=FAST)
    closed = False
    try:
        assert services.settings is settings_
        assert services.passwords is FAST
        # Each part talks to the servers it was given: this test's schema and prefix.
        user = await services.users.create("opened", "Opened", await services.passwords.hash("pw-123456"))
        post = await services.posts.create(user.id, "first")
        assert await services.posts.by_ids([post.id]) == [post]
        assert services.tokens.verify(services.tokens.issue(user.id)) == user.id
        assert services.cursors.decode("s", services.cursors.encode("s", 5)) == 5
        await services.limits.write(user.id)
        assert await services.redis.ping()
        page = await services.feeds.home(user.id, 10, None)  # takes the read path's connections
        assert isinstance(page.post_ids, list)
        assert [k async for k in services.redis.scan_iter(match=f"{settings_.redis_prefix}:rl:*")]

        pids = await backend_pids(services)
        redis_id = int(await services.redis.client_id())
        assert await live_pids(settings_, pids) == pids and redis_id in await redis_client_ids(settings_)
        # Closing must not wait on connections the read path still holds.
        async with asyncio.timeout(10):
            await services.close()
        closed = True
    finally:
        if not closed:
            await services.close()
    assert services.pool.is_closing()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if not await live_pids(settings_, pids) and redis_id not in await redis_client_ids(settings_):
            break
        await asyncio.sleep(0.05)
    assert await live_pids(settings_, pids) == set(), "PostgreSQL connections outlived close()"
    assert redis_id not in await redis_client_ids(settings_), "the Redis connection outlived close()"


async def test_open_services_bounds_redis_waits(settings_: Settings) -> None:
    # A hung Redis must not hang requests forever: the client is opened with timeouts.
    services = await open_services(settings_, passwords=FAST)
    try:
        redis = services.redis
        pool = redis.nodes_manager if isinstance(redis, RedisCluster) else redis.connection_pool
        kwargs = pool.connection_kwargs
        assert kwargs.get("socket_timeout") and kwargs.get("socket_connect_timeout")
    finally:
        await services.close()


@pytest.mark.parametrize(
    "missing",
    [
        {"database_url": None},
        {"redis_url": None},
        {"database_url": ""},
        {"database_url": None, "redis_url": None},
    ],
    ids=["no-database", "no-redis", "empty-database", "neither"],
)
async def test_open_services_needs_both_urls(settings_: Settings, missing: dict[str, object]) -> None:
    with pytest.raises(RuntimeError, match="database_url and redis_url"):
        await open_services(settings_.with_(**missing), passwords=FAST)


async def test_open_services_fails_fast_on_an_unreachable_database(settings_: Settings) -> None:
    nowhere = settings_.with_(database_url="postgresql://postgres@127.0.0.1:1/test")
    async with asyncio.timeout(30):
        with pytest.raises(OSError):
            await open_services(nowhere, passwords=FAST)


async def test_default_passwords_are_real_argon2(settings_: Settings) -> None:
    services = await open_services(settings_)
    try:
        assert isinstance(services.passwords, Passwords)
        hashed = await services.passwords.hash("pw-123456")
        assert hashed.startswith("$argon2id$") and await services.passwords.verify(hashed, "pw-123456")
    finally:
        await services.close()


async def test_settings_reach_the_parts(settings_: Settings) -> None:
    changed = settings_.with_(token_ttl_days=2, rate_limit_per_minute=2)
    assert changed.database_url and changed.redis_url
    services = build_services(
        changed, await create_pool(changed.database_url), await open_redis(changed.redis_url), passwords=FAST
    )
    try:
        claims = jwt.decode(services.tokens.issue(3), options={"verify_signature": False})
        assert claims["exp"] - claims["iat"] == 2 * 86_400
        await services.limits.write(3)
        await services.limits.write(3)
        with pytest.raises(RateLimited, match="limit is 2"):
            await services.limits.write(3)
    finally:
        await services.close()


async def test_rate_limit_zero_switches_limits_off(settings_: Settings) -> None:
    services = await open_services(settings_.with_(rate_limit_per_minute=0), passwords=FAST)
    try:
        for _ in range(50):
            await services.limits.write(1)
    finally:
        await services.close()


async def test_engines_over_one_setting_share_the_signing_secret(settings_: Settings) -> None:
    first = await open_services(settings_, passwords=FAST)
    second = await open_services(settings_, passwords=FAST)
    other = await open_services(settings_.with_(jwt_secret="another-secret-" + "y" * 20), passwords=FAST)
    try:
        token = first.tokens.issue(11)
        assert second.tokens.verify(token) == 11  # any API process accepts any other's tokens
        assert second.cursors.decode("home:11", first.cursors.encode("home:11", 77)) == 77
        with pytest.raises(Unauthenticated):
            other.tokens.verify(token)
    finally:
        for services in (first, second, other):
            await services.close()


async def test_a_generated_secret_is_kept_and_shared_through_the_data_dir(
    settings_: Settings, tmp_path: Path
) -> None:
    unset = settings_.with_(jwt_secret=None, data_dir=tmp_path / "data")
    first = await open_services(unset, passwords=FAST)
    try:
        token = first.tokens.issue(21)
    finally:
        await first.close()
    stored = (tmp_path / "data" / "jwt_secret").read_text().strip()
    assert len(stored) >= 32
    # A process started later over the same data dir still accepts it (a restart logs nobody out).
    again = await open_services(unset, passwords=FAST)
    try:
        assert again.tokens.verify(token) == 21
    finally:
        await again.close()
    elsewhere = await open_services(settings_.with_(jwt_secret=None, data_dir=tmp_path / "other"))
    try:
        with pytest.raises(Unauthenticated):
            elsewhere.tokens.verify(token)
    finally:
        await elsewhere.close()
