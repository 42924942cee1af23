"""homefeed.feed.ratelimit: fixed-window limits in a real Redis, shared by every process, failing open.

The window clock is the module's `time`; tests that cross windows replace it with a fake
clock, so nothing waits on the wall clock and no window boundary lands mid-test.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from typing import cast

import pytest
from hypothesis import given
from hypothesis import strategies as st
from redis.asyncio import Redis
from redis.crc import key_slot

from homefeed.feed import ratelimit
from homefeed.feed.config import Settings
from homefeed.feed.errors import RateLimited
from homefeed.feed.ratelimit import Bucket, RateLimiter
from homefeed.feed.redis_client import RedisClient, open_redis
from tests.counting_redis import CountingRedis


class Clock:
    """Stands in for the `time` module inside ratelimit."""

    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    # The middle of a window of 60 s (and of 10 s), far from its edges.
    fake = Clock(1_800_000_030.0)
    monkeypatch.setattr(ratelimit, "time", fake)
    return fake


async def allowed(limiter: RateLimiter, key: str, hits: int) -> int:
    """How many of `hits` hits on key went through."""
    through = 0
    for _ in range(hits):
        with contextlib.suppress(RateLimited):
            await limiter.hit(key)
            through += 1
    return through


async def prefixed_keys(redis: RedisClient, prefix: str) -> list[bytes]:
    return [k async for k in redis.scan_iter(match=f"{prefix}:*", count=1000)]


async def test_the_limit_holds_exactly(redis: RedisClient, settings_: Settings, clock: Clock) -> None:
    limiter = RateLimiter(redis, settings_.redis_prefix, limit=5)
    for _ in range(5):
        await limiter.hit("w:1")
    for _ in range(3):
        with pytest.raises(RateLimited) as caught:
            await limiter.hit("w:1")
        assert caught.value.code == "RATE_LIMITED"
        assert "5 per 60s" in str(caught.value)


async def test_concurrent_hits_from_many_processes_share_one_count(settings_: Settings, clock: Clock) -> None:
    # Every API process has its own client; the count is Redis's, so the limit is global.
    assert settings_.redis_url
    clients = [await open_redis(settings_.redis_url) for _ in range(4)]
    try:
        limiters = [RateLimiter(c, settings_.redis_prefix, limit=20) for c in clients]
        outcomes = await asyncio.gather(
            *(limiters[i % 4].hit("w:shared") for i in range(60)), return_exceptions=True
        )
    finally:
        for c in clients:
            await c.aclose()
    passed = [o for o in outcomes if o is None]
    refused = [o for o in outcomes if isinstance(o, RateLimited)]
    assert len(passed) == 20 and len(refused) == 40, outcomes


async def test_a_new_window_starts_a_new_count(redis: RedisClient, settings_: Settings, clock: Clock) -> None:
    limiter = RateLimiter(redis, settings_.redis_prefix, limit=3, window_seconds=10)
    assert await allowed(limiter, "k", 5) == 3
    clock.now += 9  # still the same window (it started at ...30 - 0 and lasts 10 s)
    with pytest.raises(RateLimited):
        await limiter.hit("k")
    clock.now += 1  # the next window
    assert await allowed(limiter, "k", 5) == 3
    clock.now += 25  # windows later: nothing carried over
    assert await allowed(limiter, "k", 4) == 3


async def test_keys_expire_so_redis_does_not_fill_up(
    redis: RedisClient, settings_: Settings, clock: Clock
) -> None:
    limiter = RateLimiter(redis, settings_.redis_prefix, limit=100, window_seconds=60)
    await limiter.hit("w:7")
    (key,) = await prefixed_keys(redis, settings_.redis_prefix)
    ttl = await redis.ttl(key)
    assert 60 <= ttl <= 120  # outlives its window, not much longer
    await limiter.hit("w:7")  # every hit refreshes it, still bounded
    assert 0 < await redis.ttl(key) <= 120


async def test_keys_are_isolated(redis: RedisClient, settings_: Settings, clock: Clock) -> None:
    limiter = RateLimiter(redis, settings_.redis_prefix, limit=2)
    assert await allowed(limiter, "w:1", 5) == 2
    # Another user, another kind of action, a key that merely starts the same: untouched.
    for other in ("w:2", "login:w:1", "w:1 ", "W:1", "w:10", "w"):
        assert await allowed(limiter, other, 2) == 2, other


async def test_prefixes_are_isolated(redis: RedisClient, settings_: Settings, clock: Clock) -> None:
    # Tenants (and tests) sharing a Redis server do not share counts.
    mine = RateLimiter(redis, settings_.redis_prefix, limit=1)
    theirs = RateLimiter(redis, settings_.redis_prefix + "x", limit=1)
    await mine.hit("w:1")
    try:
        await theirs.hit("w:1")
    finally:
        for key in await prefixed_keys(redis, settings_.redis_prefix + "x"):
            await redis.delete(key)
    with pytest.raises(RateLimited):
        await mine.hit("w:1")


@given(keys=st.lists(st.text(min_size=1, max_size=30), min_size=2, max_size=6, unique=True))
async def test_distinct_keys_never_share_a_count(
    redis: RedisClient, settings_: Settings, clock: Clock, keys: list[str]
) -> None:
    # Any text a caller builds a key from (handles, addresses, braces, colons) counts apart.
    prefix = f"{settings_.redis_prefix}:{uuid.uuid4().hex[:8]}"
    limiter = RateLimiter(redis, prefix, limit=1)
    for key in keys:
        await limiter.hit(key)
    for key in keys:
        with pytest.raises(RateLimited):
            await limiter.hit(key)


async def test_limit_zero_allows_everything_and_touches_nothing(
    redis: RedisClient, settings_: Settings, clock: Clock
) -> None:
    limiter = RateLimiter(redis, settings_.redis_prefix, limit=0)
    assert await allowed(limiter, "w:1", 50) == 50
    assert await prefixed_keys(redis, settings_.redis_prefix) == []


async def test_redis_down_fails_open_and_says_so(caplog: pytest.LogCaptureFixture, clock: Clock) -> None:
    # Nothing listens on port 1: every hit fails to reach Redis, and every hit is let through.
    dead = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
    try:
        limiter = RateLimiter(dead, "down", limit=1)
        with caplog.at_level(logging.WARNING, logger=ratelimit.__name__):
            assert await allowed(limiter, "w:1", 5) == 5
    finally:
        await dead.aclose()
    assert any("Redis unavailable" in r.getMessage() for r in caplog.records)


async def test_redis_hanging_fails_open_within_the_socket_timeout(clock: Clock) -> None:
    # A Redis that accepts connections and never answers: the hit must not hang the request.
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            await reader.read(-1)
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    hung = Redis.from_url(f"redis://127.0.0.1:{port}/0", socket_timeout=0.3, socket_connect_timeout=0.3)
    try:
        limiter = RateLimiter(hung, "hung", limit=1)
        async with asyncio.timeout(5):
            await limiter.hit("w:1")
            await limiter.hit("w:1")
    finally:
        await hung.aclose()
        server.close()


async def test_a_wrong_type_key_fails_open(redis: RedisClient, settings_: Settings, clock: Clock) -> None:
    # Redis answering with an error (here: the counter's key holds a list) is an outage too.
    limiter = RateLimiter(redis, settings_.redis_prefix, limit=1, window_seconds=60)
    window = int(clock.now) // 60
    await redis.rpush(f"{settings_.redis_prefix}:rl:{{w:1}}:{window}", "not a counter")
    assert await allowed(limiter, "w:1", 3) == 3


@pytest.mark.usefixtures("single_redis")  # a proxy in front of one server
async def test_limiting_resumes_when_redis_comes_back(settings_: Settings, clock: Clock) -> None:
    # Through a proxy we can cut: fail open while it is down, count again once it is back.
    assert settings_.redis_url
    real = Redis.from_url(settings_.redis_url)
    target = real.connection_pool.connection_kwargs
    host, port = str(target.get("host", "127.0.0.1")), int(target.get("port", 6379))
    await real.aclose()
    links: set[asyncio.StreamWriter] = set()

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def forward(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(host, port)
        links.update((writer, up_writer))
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    proxy = await asyncio.start_server(forward, "127.0.0.1", 0)
    proxy_port = proxy.sockets[0].getsockname()[1]
    client = Redis.from_url(f"redis://127.0.0.1:{proxy_port}/0", socket_timeout=1, socket_connect_timeout=1)
    limiter = RateLimiter(client, settings_.redis_prefix, limit=2)
    try:
        await limiter.hit("w:1")
        proxy.close()
        for link in links:
            link.close()
        await proxy.wait_closed()
        assert await allowed(limiter, "w:1", 4) == 4  # open while down; nothing counted
        proxy = await asyncio.start_server(forward, "127.0.0.1", proxy_port)
        await limiter.hit("w:1")  # the second hit of this window
        with pytest.raises(RateLimited):
            await limiter.hit("w:1")
    finally:
        await client.aclose()
        proxy.close()
        for link in links:
            link.close()


# --- several buckets of one subject: hit_all ---------------------------------------------------


@pytest.fixture
async def counting(settings_: Settings) -> AsyncIterator[CountingRedis]:
    assert settings_.redis_url
    client = cast(CountingRedis, CountingRedis.from_url(settings_.redis_url))
    try:
        yield client
    finally:
        await client.aclose()


PAIR = Bucket("login:alice", 3, 900)
ADDRESS = Bucket("login", 5, 900)


@pytest.mark.usefixtures("single_redis")  # counts one client's round trips to one server
async def test_several_buckets_cost_one_round_trip(
    counting: CountingRedis, settings_: Settings, clock: Clock
) -> None:
    limiter = RateLimiter(counting, settings_.redis_prefix)
    await limiter.hit_all("a:10.0.0.1", (PAIR, ADDRESS, Bucket("signup", 9, 3600)))
    assert counting.round_trips == 1
    await limiter.hit_all("a:10.0.0.1", (Bucket("off", 0, 60),))  # nothing to count: no trip
    assert counting.round_trips == 1


async def test_a_subjects_keys_share_one_cluster_slot(
    redis: RedisClient, settings_: Settings, clock: Clock
) -> None:
    # On a Redis Cluster the pipeline goes to one node only if every key hashes to one slot.
    limiter = RateLimiter(redis, settings_.redis_prefix)
    await limiter.hit_all("a:10.0.0.1", (PAIR, ADDRESS))
    keys = await prefixed_keys(redis, settings_.redis_prefix)
    assert len(keys) == 2
    assert len({key_slot(k) for k in keys}) == 1


async def test_each_bucket_keeps_its_own_count(redis: RedisClient, settings_: Settings, clock: Clock) -> None:
    limiter = RateLimiter(redis, settings_.redis_prefix)
    for _ in range(3):
        await limiter.hit_all("a:1", (PAIR, ADDRESS))
    with pytest.raises(RateLimited):  # the pair's limit (3) is reached; the address's (5) is not
        await limiter.hit_all("a:1", (PAIR, ADDRESS))
    other = Bucket("login:bob", 3, 900)
    await limiter.hit_all("a:1", (other, ADDRESS))  # the 5th on the address
    with pytest.raises(RateLimited):  # now the address is spent, whatever the handle
        await limiter.hit_all("a:1", (Bucket("login:carol", 3, 900), ADDRESS))


async def test_retry_after_is_the_rest_of_the_window(
    redis: RedisClient, settings_: Settings, clock: Clock
) -> None:
    limiter = RateLimiter(redis, settings_.redis_prefix)
    hour = Bucket("signup", 1, 3600)
    clock.now = 1_800_000_000.0 + 600.25  # 600.25 s into an hour-long window
    await limiter.hit_all("a:1", (hour,))
    with pytest.raises(RateLimited) as caught:
        await limiter.hit_all("a:1", (hour,))
    assert caught.value.retry_after == 3000  # 2999.75 s left, rounded up to whole seconds
    assert "retry in 3000s" in str(caught.value)


async def test_the_longest_wait_among_refusing_buckets_is_reported(
    redis: RedisClient, settings_: Settings, clock: Clock
) -> None:
    limiter = RateLimiter(redis, settings_.redis_prefix)
    minute, hour = Bucket("m", 1, 60), Bucket("h", 1, 3600)
    clock.now = 1_800_000_000.0 + 30  # 30 s into both windows
    await limiter.hit_all("a:1", (minute, hour))
    with pytest.raises(RateLimited) as caught:
        await limiter.hit_all("a:1", (minute, hour))
    assert caught.value.retry_after == 3570


@given(
    offset=st.floats(min_value=0, max_value=10_000, allow_nan=False),
    window=st.sampled_from([1, 10, 60, 900, 3600]),
)
async def test_waiting_retry_after_always_gets_through(
    redis: Redis, settings_: Settings, clock: Clock, offset: float, window: int
) -> None:
    # The promise a client acts on: wait retryAfter seconds and the next try is counted afresh,
    # never much later than needed (at most one window).
    prefix = f"{settings_.redis_prefix}:{uuid.uuid4().hex[:8]}"
    limiter = RateLimiter(redis, prefix)
    bucket = Bucket("b", 1, window)
    clock.now = 1_800_000_000.0 + offset
    await limiter.hit_all("s", (bucket,))
    with pytest.raises(RateLimited) as caught:
        await limiter.hit_all("s", (bucket,))
    wait = caught.value.retry_after
    assert 1 <= wait <= window
    clock.now += wait
    await limiter.hit_all("s", (bucket,))


async def test_hit_all_fails_open_when_redis_is_down(clock: Clock) -> None:
    dead = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
    try:
        limiter = RateLimiter(dead, "down")
        for _ in range(5):
            await limiter.hit_all("a:1", (Bucket("x", 1, 60), Bucket("y", 1, 60)))
    finally:
        await dead.aclose()
