"""`homefeed seed`: generate a world, load it into PostgreSQL, build its timelines, report.

Seeded posts get no outbox rows: the timelines are built in one bulk step at the end
(timelines.py), not by replaying a million fan-out jobs.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

import asyncpg
import numpy as np
from redis.exceptions import RedisError

from homefeed.feed.config import Settings
from homefeed.feed.feeds import Feeds
from homefeed.feed.redis_client import RedisClient, open_redis
from homefeed.feed.store.pool import create_pool
from homefeed.feed.store.posts import Posts
from homefeed.seed import load
from homefeed.seed.errors import SeedError
from homefeed.seed.generate import GENERATION_STEPS, SeedParams, World, generate
from homefeed.seed.progress import Clock, NullProgress, PhaseTime, SeedProgress
from homefeed.seed.timelines import build_timelines

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SeedReport:
    users: int
    active_users: int
    follows: int
    posts: int
    max_followers: int
    above_50k: int
    above_10k: int
    median_following: int
    phases: tuple[PhaseTime, ...]
    fan_out: str
    notes: tuple[str, ...] = ()

    @property
    def seconds(self) -> float:
        return sum(p.seconds for p in self.phases)

    def summary(self) -> str:
        """A human-readable summary for the command line."""
        lines = [
            f"users           {self.users:>12,}  ({self.active_users:,} active)",
            f"follows         {self.follows:>12,}  (median following {self.median_following})",
            f"posts           {self.posts:>12,}",
            f"max followers   {self.max_followers:>12,}",
            f"above 50k       {self.above_50k:>12,}",
            f"above 10k       {self.above_10k:>12,}",
            "phases:",
            *(f"  {p.phase:<12} {p.seconds:8.1f} s" for p in self.phases),
            f"  {'total':<12} {self.seconds:8.1f} s",
            f"fan-out: {self.fan_out}",
            *(f"note: {note}" for note in self.notes),
        ]
        return "\n".join(lines)


async def seed(
    pool: asyncpg.Pool,
    params: SeedParams,
    progress: SeedProgress | None = None,
    *,
    redis: RedisClient | None = None,
    settings: Settings | None = None,
) -> SeedReport:
    """Generate the world for params and load it; SeedError if users exist and reset is not set.

    With `reset`, the seeded tables (and outbox, likes, blocks, mutes) are truncated first and
    the Redis keys under `settings.redis_prefix` dropped, since they describe the old world.
    Everything is loaded in one transaction: a failure leaves the database as it was. Without
    `redis` and `settings`, timelines are left to be built on each user's first read.
    """
    params.check()
    clock = Clock(progress or NullProgress())
    # Refuse before spending the generation's time; load() checks again under a lock.
    if not params.reset and not await load.is_empty(pool):
        raise SeedError(load.NOT_EMPTY)

    with clock.phase("generating", GENERATION_STEPS):
        world = await asyncio.to_thread(generate, params, lambda: clock.progress.advance(1))
    await load.load(pool, world, clock, reset=params.reset)
    await load.vacuum(pool, clock)

    notes: list[str] = []
    if params.reset and redis is not None and settings is not None:
        try:
            await _forget_redis(redis, settings.redis_prefix)
        except RedisError as exc:
            # The database is committed and is the truth; stale timelines only cost reads that
            # filter out posts which no longer exist, until Redis is flushed or restarted.
            log.warning("could not drop the old world's Redis keys: %s", exc)
            notes.append(f"old Redis keys not dropped ({exc}); flush Redis to clear them")
    fan_out = await _fan_out(pool, world, clock, redis=redis, settings=settings)

    followers = world.follower_count
    return SeedReport(
        users=world.users,
        active_users=world.active_users(),
        follows=world.follows,
        posts=world.posts,
        max_followers=int(followers.max(initial=0)),
        above_50k=int(np.count_nonzero(followers > 50_000)),
        above_10k=int(np.count_nonzero(followers > 10_000)),
        median_following=int(np.median(world.following_count)),
        phases=tuple(clock.phases),
        fan_out=fan_out,
        notes=tuple(notes),
    )


async def _fan_out(
    pool: asyncpg.Pool,
    world: World,
    clock: Clock,
    *,
    redis: RedisClient | None,
    settings: Settings | None,
) -> str:
    """Build every active user's timeline for the freshly loaded world; a one-line note for the report."""
    if redis is None or settings is None:
        return "skipped (no Redis given): timelines are built on first read"
    feeds = Feeds(pool, redis, Posts(pool), settings)
    started = time.perf_counter()
    try:
        written = await build_timelines(pool, feeds, world, settings, clock.progress)
    except RedisError as exc:
        # The database is loaded and is the truth; each timeline is built on its owner's first read.
        log.warning("timelines not built, Redis unavailable: %s", exc)
        return f"skipped (Redis unavailable: {exc}): timelines are built on first read"
    finally:
        clock.phases.append(PhaseTime("fan-out", time.perf_counter() - started))
        await feeds.close()
    return f"{written:,} timelines built"


async def _forget_redis(redis: RedisClient, prefix: str) -> None:
    """Drop every key under the prefix: it is derived from the world just replaced."""
    batch: list[bytes] = []
    async for key in redis.scan_iter(match=f"{prefix}:*", count=1000):
        batch.append(key)
        if len(batch) >= 1000:
            await redis.unlink(*batch)
            batch.clear()
    if batch:
        await redis.unlink(*batch)


async def seed_from_settings(settings: Settings, params: SeedParams, progress: SeedProgress) -> SeedReport:
    """Open a pool and a Redis client for settings (URLs set), seed, close them."""
    assert settings.database_url and settings.redis_url
    pool = await create_pool(settings.database_url, min_size=1, max_size=2)
    redis = await open_redis(settings.redis_url)
    try:
        return await seed(pool, params, progress, redis=redis, settings=settings)
    finally:
        await redis.aclose()
        await pool.close()
