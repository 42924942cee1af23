"""Fixed-window rate limits kept in Redis, so every API process shares one count."""

from __future__ import annotations

import logging
import time

from redis.asyncio import Redis
from redis.exceptions import RedisError

from homefeed.feed.errors import RateLimited

log = logging.getLogger(__name__)


class RateLimiter:
    """At most `limit` hits per key per window; a limit of 0 allows everything."""

    def __init__(self, redis: Redis, prefix: str, limit: int, window_seconds: int = 60) -> None:
        self._redis = redis
        self._prefix = prefix
        self._limit = limit
        self._window = window_seconds

    async def hit(self, key: str) -> None:
        """Count one hit for key; RateLimited when over the limit. Fails open if Redis is down."""
        if self._limit <= 0:
            return
        window = int(time.time()) // self._window
        # One key per subject: safe on a Redis Cluster (a single slot per command).
        name = f"{self._prefix}:rl:{{{key}}}:{window}"
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.incr(name)
                pipe.expire(name, self._window * 2)
                count, _ = await pipe.execute()
        except (RedisError, OSError) as exc:
            # Limits protect the service; they must not take it down with Redis.
            log.warning("rate limit skipped, Redis unavailable: %s", exc)
            return
        if int(count) > self._limit:
            raise RateLimited(f"too many requests; limit is {self._limit} per {self._window}s")
