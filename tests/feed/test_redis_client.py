"""The client for a URL is decided by the server: a cluster client for a cluster node, else a plain one."""

from __future__ import annotations

from redis.asyncio.cluster import RedisCluster

from homefeed.bench.valkey_cluster import LocalCluster
from homefeed.feed.config import Settings
from homefeed.feed.redis_client import client_name, is_cluster, is_cluster_url, open_redis


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


def test_client_names_carry_the_prefix_and_nothing_redis_refuses() -> None:
    assert client_name("hf") == "homefeed:hf"
    assert client_name("a b\nc") == "homefeed:a_b_c"


async def test_named_clients_show_their_name_in_client_list(
    valkey_cluster: LocalCluster, single_servers: Settings
) -> None:
    assert single_servers.redis_url
    for url in (valkey_cluster.url, single_servers.redis_url):
        client = await open_redis(url, name="homefeed:named-test")
        try:
            await client.set("homefeed-test:{named}", b"1", ex=10)
            if isinstance(client, RedisCluster):
                # The connection that wrote sits on the key's master.
                node = client.get_node_from_key("homefeed-test:{named}")
                names = await client.client_list(target_nodes=node)
            else:
                names = await client.client_list()
            assert "homefeed:named-test" in {c["name"] for c in names}
        finally:
            await client.aclose()
