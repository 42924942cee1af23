"""Dropping the hub's pub/sub connection as a Redis restart would, without touching other
processes' hubs on a shared server (a bare CLIENT KILL TYPE pubsub sends every hub on it into
a reconnect and a RESYNC, benchmarks included)."""

from __future__ import annotations

import asyncio
from typing import Any

from redis.asyncio.cluster import RedisCluster

from homefeed.feed.pubsub import subscriber_counts
from homefeed.feed.redis_client import client_name
from homefeed.feed.services import Services
from homefeed.schema.node import expect_global_id
from tests.api import Account

LISTEN_SECONDS = 30.0  # generous: a loaded machine and a cluster's slot-map reads are slow


async def hub_listening(services: Services, viewer: Account, *followees: Account) -> None:
    """Wait until the hub listens for viewer: Redis counts a subscriber on each of its channels.

    The hub counts a viewer before its SUBSCRIBE (SSUBSCRIBE, after reading the cluster's slot
    map) has reached Redis, and a connection Redis has not yet seen subscribe is not a pub/sub
    connection to CLIENT KILL TYPE pubsub: dropped earlier, nothing is lost and no RESYNC follows.
    """
    hub = services.live
    ids = [expect_global_id(who.id, "User") for who in (viewer, *followees)]
    channels = [hub.channels.user(ids[0]), *(hub.channels.author(i) for i in ids)]
    deadline = asyncio.get_running_loop().time() + LISTEN_SECONDS
    while not all(await subscriber_counts(services.redis, channels)):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"the hub never listened on {channels}")
        await asyncio.sleep(0.02)


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
