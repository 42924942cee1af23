"""Dropping the hub's pub/sub connection as a Redis restart would, without touching other
processes' hubs on a shared server (a bare CLIENT KILL TYPE pubsub sends every hub on it into
a reconnect and a RESYNC, benchmarks included)."""

from __future__ import annotations

from typing import Any

from redis.asyncio.cluster import RedisCluster

from homefeed.feed.redis_client import client_name
from homefeed.feed.services import Services


async def kill_own_pubsub(services: Services) -> None:
    """Kill this service's pub/sub connections (on a cluster, every node's: its own nodes)."""
    redis = services.redis
    if isinstance(redis, RedisCluster):
        await redis.client_kill_filter(_type="pubsub", target_nodes=RedisCluster.ALL_NODES)
        return
    for client in await own_pubsub_clients(services):
        await redis.client_kill_filter(_id=client["id"])


async def own_pubsub_clients(services: Services) -> list[dict[str, Any]]:
    """The pub/sub connections on the single server that carry this service's client name."""
    name = client_name(services.settings.redis_prefix)
    clients = await services.redis.client_list(_type="pubsub")
    return [c for c in clients if c.get("name") == name]
