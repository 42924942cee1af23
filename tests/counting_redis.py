"""Redis clients that count their round trips, for tests that bound them."""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from homefeed.feed.redis_client import RedisClient, is_cluster_url


class CountingRedis(Redis):
    """Counts round trips: each command sent alone, each pipeline executed."""

    round_trips = 0

    async def execute_command(self, *args: object, **options: object) -> object:
        self.round_trips += 1
        return await super().execute_command(*args, **options)  # type: ignore[no-untyped-call]

    def pipeline(self, transaction: bool = True, shard_hint: str | None = None) -> Any:
        pipe = super().pipeline(transaction, shard_hint)
        run = pipe.execute

        async def execute(raise_on_error: bool = True) -> list[Any]:
            self.round_trips += 1
            return await run(raise_on_error)

        pipe.execute = execute  # type: ignore[method-assign]
        return pipe


class CountingCluster(RedisCluster):
    """CountingRedis for a cluster: a pipeline counts once, so its keys should share a slot."""

    round_trips = 0

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        self.round_trips += 1
        return await super().execute_command(*args, **kwargs)

    def pipeline(self, transaction: Any | None = None, shard_hint: Any | None = None) -> Any:
        pipe = super().pipeline(transaction, shard_hint)
        run = pipe.execute

        async def execute(raise_on_error: bool = True, allow_redirections: bool = True) -> list[Any]:
            self.round_trips += 1
            return await run(raise_on_error, allow_redirections)

        pipe.execute = execute  # type: ignore[method-assign]
        return pipe


async def counting_client(url: str) -> CountingRedis | CountingCluster:
    """A counting client of the server or cluster at url (as open_redis decides)."""
    client: RedisClient = (
        CountingCluster.from_url(url) if await is_cluster_url(url) else CountingRedis.from_url(url)
    )
    assert isinstance(client, CountingRedis | CountingCluster)
    return client
