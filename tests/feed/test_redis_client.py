"""The client for a URL is decided by the server: a cluster client for a cluster node, else a plain one."""

from __future__ import annotations

from homefeed.bench.valkey_cluster import LocalCluster
from homefeed.feed.config import Settings
from homefeed.feed.redis_client import is_cluster, is_cluster_url, open_redis


async def test_a_cluster_node_gets_a_cluster_client_and_a_single_server_a_plain_one(
    valkey_cluster: LocalCluster, single_servers: Settings
) -> None:
    assert single_servers.redis_url
    assert await is_cluster_url(valkey_cluster.url)
    assert not await is_cluster_url(single_servers.redis_url)
    for url, clustered in ((valkey_cluster.url, True), (single_servers.redis_url, False)):
        client = await open_redis(url)
        try:
            assert is_cluster(client) is clustered
            # Any node will do: the client finds the rest.
            await client.set("homefeed-test:{detect}", b"1", ex=10)
            assert await client.get("homefeed-test:{detect}") == b"1"
        finally:
            await client.aclose()
