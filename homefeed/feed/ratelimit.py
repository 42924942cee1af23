"""Fixed-window rate limits kept in Redis, so every API process shares one count."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from redis.exceptions import RedisError

from homefeed.feed.errors import RateLimited
from homefeed.feed.redis_client import RedisClient

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Bucket:
    """One count under a subject: at most `limit` hits per `window_seconds`; 0 allows everything."""

    name: str
    limit: int
    window_seconds: int


class RateLimiter:
    """Counts hits in Redis. `hit` counts one key against the limiter's own limit; `hit_all`
    counts several buckets of one subject in a single round trip."""

    def __init__(
        self,
        redis: RedisClient,
        prefix: str,
        limit: int = 0,
        window_seconds: int = 60,
        *,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self._redis = redis
        self._prefix = prefix
        self._own = Bucket("", limit, window_seconds)
        # Looked up on every call (not bound once), so tests may replace the module's clock.
        self._clock = clock or (lambda: time.time())

    async def hit(self, key: str) -> None:
        """Count one hit for key; RateLimited when over the limit. Fails open if Redis is down."""
        await self.hit_all(key, (self._own,))

    async def hit_all(self, subject: str, buckets: Sequence[Bucket]) -> None:
        """Count one hit in each bucket of `subject`, all in one pipelined round trip;
        RateLimited (with the longest wait) if any is over its limit. Fails open if Redis is down.

        Every key of one subject carries the subject as its hash tag: on a Redis Cluster they
        share a slot, so the pipeline still goes to one node in one round trip.
        """
        live = [b for b in buckets if b.limit > 0]
        if not live:
            return
        now = self._clock()
        names = [self._key(subject, b, int(now) // b.window_seconds) for b in live]
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for name, bucket in zip(names, live, strict=True):
                    pipe.incr(name)
                    pipe.expire(name, bucket.window_seconds * 2)
                replies = await pipe.execute()
        except (RedisError, OSError) as exc:
            # Limits protect the service; they must not take it down with Redis.
            log.warning("rate limit skipped, Redis unavailable: %s", exc)
            return
        over = [b for b, count in zip(live, replies[::2], strict=True) if int(count) > b.limit]
        if over:
            wait = max(_until_next_window(now, b.window_seconds) for b in over)
            first = over[0]
            raise RateLimited(
                f"too many requests; limit is {first.limit} per {first.window_seconds}s; retry in {wait}s",
                retry_after=wait,
            )

    def _key(self, subject: str, bucket: Bucket, window: int) -> str:
        middle = f":{bucket.name}" if bucket.name else ""
        return f"{self._prefix}:rl:{{{subject}}}{middle}:{window}"


def _until_next_window(now: float, window_seconds: int) -> int:
    """Whole seconds from now until the window after the current one starts (at least 1)."""
    start_of_next = (int(now) // window_seconds + 1) * window_seconds
    return max(1, math.ceil(start_of_next - now))
