"""CPU the stores spend on one API's requests: its PostgreSQL backends, and the Redis server.

PostgreSQL runs one backend process per connection: the backends whose client endpoint is
one of the API processes' own sockets are that API's, whoever else uses the server. Redis
runs every client's commands on one thread and tells no client's share, so its figure is
the whole server's (INFO used_cpu_*); the baseline, which touches no store, measures in its
own slices what the rest of the machine's clients cost it meanwhile (see report.py).
Both need the servers on this machine (psutil reads the backends' CPU); elsewhere the
figures are NaN.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from dataclasses import dataclass

import asyncpg
import psutil
from redis.exceptions import RedisError

from homefeed.feed.redis_client import RedisClient

_BACKENDS = """
SELECT pid, host(client_addr) AS ip, client_port FROM pg_stat_activity
WHERE datname = current_database() AND client_port IS NOT NULL
"""


@dataclass(frozen=True)
class StoreSample:
    """CPU seconds so far: per PostgreSQL backend of the API, and of the whole Redis server."""

    backends: dict[int, float]
    redis_s: float


class StoreCpu:
    """Samples taken at a slice's start and end; the difference is the slice's store CPU."""

    def __init__(self, pool: asyncpg.Pool, redis: RedisClient, addresses: Callable[[], set[str]]) -> None:
        self._pool = pool
        self._redis = redis
        self._addresses = addresses

    async def sample(self) -> StoreSample:
        """The API's backends' CPU and Redis's, now."""
        mine = self._addresses()
        backends: dict[int, float] = {}
        for row in await self._pool.fetch(_BACKENDS):
            if f"{row['ip']}:{row['client_port']}" in mine:
                with contextlib.suppress(psutil.Error):
                    times = psutil.Process(row["pid"]).cpu_times()
                    backends[row["pid"]] = times.user + times.system
        try:
            info = await self._redis.info("cpu")
            redis_s = float(info["used_cpu_user"]) + float(info["used_cpu_sys"])
        except (RedisError, KeyError, ValueError):
            redis_s = math.nan
        return StoreSample(backends, redis_s)


def postgres_seconds(before: StoreSample, after: StoreSample) -> float:
    """The API's backends' CPU between two samples (a backend opened meanwhile counts from zero)."""
    return sum(cpu - before.backends.get(pid, 0.0) for pid, cpu in after.backends.items())
