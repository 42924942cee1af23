"""The Redis client for a URL: a plain client for a single server, a cluster client for a cluster.

Which one is decided by the server itself at start-up (`INFO cluster`), so pointing
HOMEFEED_REDIS_URL at any node of a Redis Cluster or Valkey cluster needs no other setting.
Every key the service writes carries its user's hash tag (timeline/keys.py), so each command
and each optimistic transaction touches one slot.
"""

from __future__ import annotations

from typing import Any, TypeAlias

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from homefeed.feed import redis_cancels

RedisClient: TypeAlias = Redis | RedisCluster

# For every client in the process, not only those made here: the service's other clients (the
# hub's shard links, a cluster's per-node readers) are all made once this module is imported.
redis_cancels.install()


async def is_cluster_url(url: str) -> bool:
    """Whether the server at url runs in cluster mode (asks it: `INFO cluster`)."""
    probe = Redis.from_url(url, socket_timeout=5, socket_connect_timeout=2)
    try:
        info = await probe.info("cluster")
    finally:
        await probe.aclose()
    return bool(info.get("cluster_enabled"))


def client_name(prefix: str) -> str:
    """The CLIENT SETNAME of the service's connections under a key prefix: `homefeed:<prefix>`.

    CLIENT LIST then tells which deployment each connection belongs to when several share a
    server. Redis refuses spaces and newlines in a name, so any such character becomes `_`.
    """
    return "homefeed:" + "".join(c if c.isprintable() and not c.isspace() else "_" for c in prefix)


async def open_redis(url: str, *, name: str | None = None, **options: Any) -> RedisClient:
    """A client for the server or cluster at url (options as for `Redis.from_url`); `name`, if
    given, is set on each of its connections (CLIENT SETNAME)."""
    if name is not None:
        options["client_name"] = name
    if await is_cluster_url(url):
        return RedisCluster.from_url(url, **options)
    return Redis.from_url(url, **options)


def is_cluster(redis: RedisClient) -> bool:
    """Whether this client talks to a cluster."""
    return isinstance(redis, RedisCluster)
