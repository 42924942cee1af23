"""HOMEFEED_REDIS_URL naming several nodes: start-up needs one of them up, not a particular one."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from homefeed.bench.valkey_cluster import LocalCluster, Node, local_cluster
from homefeed.feed.config import Settings, SettingsError, load
from homefeed.feed.redis_client import is_cluster, open_redis
from homefeed.feed.services import open_services
from tests.conftest import FAST_PASSWORDS, isolated_settings
from tests.feed.cluster_world import World
from tests.server import free_port


@pytest.fixture
def own_cluster() -> Iterator[LocalCluster]:
    with local_cluster() as cluster:
        yield cluster


def _marked_failed(cluster: LocalCluster, dead: Node) -> None:
    """Wait until the live nodes agree the stopped node has failed (the cluster is healthy again)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        views = [cluster.call(n, "CLUSTER", "NODES") for n in cluster.alive()]
        if all(
            any(f"127.0.0.1:{dead.port}@" in line and "fail" in line.split()[2] for line in v.splitlines())
            for v in views
        ):
            return
        time.sleep(0.1)
    raise AssertionError(f"the cluster did not mark the node on port {dead.port} failed")


async def test_the_service_starts_and_serves_when_the_first_listed_node_is_down(
    own_cluster: LocalCluster, single_servers: Settings
) -> None:
    """The first URL names a stopped node; the second a live one: the process starts on the
    cluster, and feeds equal the pull query's after fan-out."""
    dead = own_cluster.replica_of(own_cluster.masters()[1])
    own_cluster.kill(dead)
    _marked_failed(own_cluster, dead)
    url = f"redis://127.0.0.1:{dead.port}/0,{own_cluster.url}"
    async with isolated_settings(single_servers.with_(redis_url=url)) as settings:
        services = await open_services(settings.with_(celebrity_threshold=20), passwords=FAST_PASSWORDS)
        try:
            assert is_cluster(services.redis)
            world = await World.make(services)
            assert await world.outbox_left() == 0
            await world.check()
        finally:
            await services.close()


async def test_start_up_fails_naming_every_node_when_none_answers() -> None:
    urls = [f"redis://127.0.0.1:{free_port()}/0" for _ in range(2)]
    with pytest.raises(RedisConnectionError) as failed:
        await open_redis(",".join(urls))
    for url in urls:
        assert url in str(failed.value)


@pytest.mark.usefixtures("single_redis")
async def test_several_urls_for_a_single_server_are_refused(settings_: Settings) -> None:
    """A single server has one address: a second URL would be a mistake (a replica not written
    to, another deployment), not a spare."""
    assert settings_.redis_url
    with pytest.raises(SettingsError, match="not in cluster mode"):
        await open_redis(f"{settings_.redis_url},redis://127.0.0.1:{free_port()}/0")


def test_the_setting_takes_a_comma_separated_list_and_checks_each_url() -> None:
    env = {"HOMEFEED_REDIS_URL": " redis://a:7000/0 , redis://b:7001/0 "}
    assert load(env).redis_url == "redis://a:7000/0,redis://b:7001/0"
    with pytest.raises(SettingsError, match="REDIS_URL"):
        load({"HOMEFEED_REDIS_URL": "redis://a:7000/0,http://b:7001/0"})
