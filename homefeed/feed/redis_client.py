"""The Redis client for a URL: a plain client for a single server, a cluster client for a cluster.

Which one is decided by the server itself at start-up (`INFO cluster`), so pointing
HOMEFEED_REDIS_URL at any node of a Redis Cluster or Valkey cluster needs no other setting.
For a cluster it may name several nodes, comma-separated: they are asked in turn, so start-up
needs one of them up, not a particular one.
Every key the service writes carries its user's hash tag (timeline/keys.py), so each command
and each optimistic transaction touches one slot.
"""

from __future__ import annotations

from typing import Any, TypeAlias
from urllib.parse import urlsplit

from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from homefeed.feed import redis_cancels
from homefeed.feed.config import SettingsError

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


def node_urls(url: str) -> list[str]:
    """The URLs a HOMEFEED_REDIS_URL names: one, or a cluster's nodes, comma-separated."""
    return [u.strip() for u in url.split(",") if u.strip()]


async def open_redis(url: str, *, name: str | None = None, **options: Any) -> RedisClient:
    """A client for the server or cluster at url (options as for `Redis.from_url`); `name`, if
    given, is set on each of its connections (CLIENT SETNAME).

    url may name several nodes of one cluster, comma-separated: the first that answers says it
    is a cluster node, and all of them seed the cluster client. Several URLs of which the one
    answering is not a cluster node are refused: a single server has one address.
    """
    if name is not None:
        options["client_name"] = name
    urls = node_urls(url)
    failures: list[str] = []
    for i, candidate in enumerate(urls):
        try:
            cluster = await is_cluster_url(candidate)
        except (RedisError, OSError) as exc:
            failures.append(f"{candidate}: {exc}")
            continue
        if cluster:
            # The answering node first, then the others: the client reads the slot map from the
            # first that answers it (credentials and options come from the answering URL).
            seeds = [_node(u) for u in [candidate, *urls[:i], *urls[i + 1 :]]]
            return RedisCluster.from_url(candidate, startup_nodes=seeds, **options)
        if len(urls) > 1:
            raise SettingsError(
                f"HOMEFEED_REDIS_URL names {len(urls)} nodes, but {candidate} is not in cluster mode:"
                " several URLs are a cluster's nodes; a single server takes one"
            )
        return Redis.from_url(candidate, **options)
    raise RedisConnectionError("no Redis node answered at start-up: " + "; ".join(failures))


def _node(url: str) -> ClusterNode:
    parts = urlsplit(url)
    return ClusterNode(parts.hostname or "127.0.0.1", parts.port or 6379)


def is_cluster(redis: RedisClient) -> bool:
    """Whether this client talks to a cluster."""
    return isinstance(redis, RedisCluster)
