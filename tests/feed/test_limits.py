"""homefeed.feed.limits: who is counted where, and an attacker cannot spend a victim's budget.

Windows are crossed with an injected clock, so nothing sleeps.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable

import pytest
from prometheus_client import REGISTRY
from redis.asyncio import Redis

from homefeed.feed.config import Settings
from homefeed.feed.errors import RateLimited
from homefeed.feed.limits import LOG_IN_WINDOW, NO_SUCH_HANDLE, SIGN_UP_WINDOW, Limits
from homefeed.feed.redis_client import RedisClient

START = 1_800_000_000.0  # the start of a window of every length used


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def limits_for(redis: RedisClient, settings_: Settings, clock: Clock, **changes: object) -> Limits:
    on = {
        "query_rate_limit": 4,
        "anonymous_rate_limit": 3,
        "rate_limit_per_minute": 2,
        "log_in_limit": 3,
        "log_in_address_limit": 6,
        "sign_up_limit": 2,
    }
    return Limits(redis, settings_.with_(**{**on, **changes}), clock=clock)


async def through(hit: Callable[[], Awaitable[None]], tries: int) -> int:
    """How many of `tries` calls were let through."""
    passed = 0
    for _ in range(tries):
        with contextlib.suppress(RateLimited):
            await hit()
            passed += 1
    return passed


async def test_an_attacker_elsewhere_cannot_lock_the_victim_out(
    redis: RedisClient, settings_: Settings, clock: Clock
) -> None:
    # The scenario: 3 wrong tries on alice from the attacker's address, limit 3.
    limits = limits_for(redis, settings_, clock)
    attacker, victim = "203.0.113.9", "198.51.100.7"
    assert await through(lambda: limits.log_in(attacker, "alice"), 3) == 3
    with pytest.raises(RateLimited) as caught:
        await limits.log_in(attacker, "alice")  # the attacker's own budget for alice is spent
    assert caught.value.retry_after == LOG_IN_WINDOW
    await limits.log_in(victim, "alice")  # the victim, from their own address, is let through


async def test_one_address_guessing_many_handles_runs_out(
    redis: RedisClient, settings_: Settings, clock: Clock
) -> None:
    limits = limits_for(redis, settings_, clock)
    handles = [f"user{i}" for i in range(10)]
    passed = []
    for handle in handles:
        with contextlib.suppress(RateLimited):
            await limits.log_in("203.0.113.9", handle)
            passed.append(handle)
    assert passed == handles[:6]  # the address's limit, whatever the handles
    await limits.log_in("198.51.100.7", "user9")  # other addresses are untouched


async def test_handles_no_account_can_have_share_one_bucket(
    redis: RedisClient, settings_: Settings, clock: Clock
) -> None:
    # Junk handles cannot mint fresh buckets (or huge Redis keys): they count as one.
    limits = limits_for(redis, settings_, clock, log_in_address_limit=100)
    junk = ["", "x" * 5000, "a b", "{evil}", "é"]
    assert await through(lambda: limits.log_in("203.0.113.9", junk.pop()), 5) == 3
    keys = [k async for k in redis.scan_iter(match=f"{settings_.redis_prefix}:rl:*")]
    assert all(len(k) < 100 for k in keys)
    assert any(f":login:{NO_SUCH_HANDLE}:".encode() in k for k in keys)


async def test_log_in_budget_comes_back_after_its_window(
    redis: RedisClient, settings_: Settings, clock: Clock
) -> None:
    limits = limits_for(redis, settings_, clock)
    assert await through(lambda: limits.log_in("203.0.113.9", "alice"), 5) == 3
    clock.now += LOG_IN_WINDOW - 1
    assert await through(lambda: limits.log_in("203.0.113.9", "alice"), 1) == 0
    clock.now += 1
    assert await through(lambda: limits.log_in("203.0.113.9", "alice"), 5) == 3


async def test_sign_up_counts_per_address_per_hour(
    redis: RedisClient, settings_: Settings, clock: Clock
) -> None:
    limits = limits_for(redis, settings_, clock)
    assert await through(lambda: limits.sign_up("203.0.113.9"), 5) == 2
    await limits.sign_up("198.51.100.7")
    clock.now += 60 * 30  # half an hour later: still refused, and told how long is left
    with pytest.raises(RateLimited) as caught:
        await limits.sign_up("203.0.113.9")
    assert caught.value.retry_after == SIGN_UP_WINDOW // 2
    clock.now += caught.value.retry_after
    assert await through(lambda: limits.sign_up("203.0.113.9"), 5) == 2


async def test_sign_up_is_not_the_write_limit(redis: RedisClient, settings_: Settings, clock: Clock) -> None:
    limits = limits_for(redis, settings_, clock, rate_limit_per_minute=1000, sign_up_limit=2)
    assert await through(lambda: limits.sign_up("203.0.113.9"), 5) == 2


async def test_queries_count_per_user_when_signed_in_else_per_address(
    redis: RedisClient, settings_: Settings, clock: Clock
) -> None:
    limits = limits_for(redis, settings_, clock)
    assert await through(lambda: limits.query(None, "203.0.113.9"), 5) == 3  # anonymous: 3
    # Signed-in users from that same address have their own budgets (4 each).
    assert await through(lambda: limits.query(1, "203.0.113.9"), 6) == 4
    assert await through(lambda: limits.query(2, "203.0.113.9"), 6) == 4
    # And another address's anonymous budget is its own.
    assert await through(lambda: limits.query(None, "198.51.100.7"), 5) == 3


async def test_buckets_of_different_limits_never_mix(
    redis: RedisClient, settings_: Settings, clock: Clock
) -> None:
    limits = limits_for(redis, settings_, clock)
    address = "203.0.113.9"
    assert await through(lambda: limits.sign_up(address), 5) == 2
    assert await through(lambda: limits.query(None, address), 5) == 3
    assert await through(lambda: limits.log_in(address, "alice"), 5) == 3
    assert await through(lambda: limits.write(1), 5) == 2
    assert await through(lambda: limits.query(1, address), 5) == 4


async def test_zero_switches_each_limit_off(redis: RedisClient, settings_: Settings, clock: Clock) -> None:
    limits = limits_for(
        redis,
        settings_,
        clock,
        query_rate_limit=0,
        anonymous_rate_limit=0,
        rate_limit_per_minute=0,
        log_in_limit=0,
        log_in_address_limit=0,
        sign_up_limit=0,
    )
    for _ in range(20):
        await limits.query(None, "a")
        await limits.query(1, "a")
        await limits.write(1)
        await limits.log_in("a", "alice")
        await limits.sign_up("a")
    assert [k async for k in redis.scan_iter(match=f"{settings_.redis_prefix}:*")] == []


async def test_every_limit_fails_open_when_redis_is_down(settings_: Settings, clock: Clock) -> None:
    dead = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
    try:
        limits = limits_for(dead, settings_, clock, log_in_limit=1, sign_up_limit=1, anonymous_rate_limit=1)
        for _ in range(3):
            await limits.query(None, "a")
            await limits.log_in("a", "alice")
            await limits.sign_up("a")
            await limits.write(1)
    finally:
        await dead.aclose()


async def test_refusals_are_counted_by_limit(redis: RedisClient, settings_: Settings, clock: Clock) -> None:
    limits = limits_for(redis, settings_, clock)

    def refused(limit: str) -> float:
        return REGISTRY.get_sample_value("homefeed_rate_limited_total", {"limit": limit}) or 0.0

    before = {name: refused(name) for name in ("anonymous", "log_in", "sign_up")}
    await through(lambda: limits.query(None, "a"), 5)
    await through(lambda: limits.log_in("a", "alice"), 4)
    await through(lambda: limits.sign_up("a"), 2)
    assert refused("anonymous") == before["anonymous"] + 2
    assert refused("log_in") == before["log_in"] + 1
    assert refused("sign_up") == before["sign_up"]
