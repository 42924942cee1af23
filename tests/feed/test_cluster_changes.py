"""A Redis Cluster changing under load: slots resharded while posts fan out and feeds are read, and a
master killed until its replica takes over. Feeds stay equal to the PostgreSQL pull query throughout,
and every acknowledged post is there afterwards.

Each test has a cluster of its own (it reshards or breaks it) and runs once, whatever the
session's Redis.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
from redis.asyncio import Redis

from homefeed.bench.valkey_cluster import LocalCluster, local_cluster
from homefeed.feed.config import Settings
from homefeed.feed.services import Services
from tests.feed.cluster_world import World, redis_fallbacks, services_on


@pytest.fixture
def own_cluster() -> Iterator[LocalCluster]:
    with local_cluster() as cluster:
        yield cluster


async def test_resharding_under_reads_and_fan_out_keeps_feeds_equal_to_the_pull_query(
    own_cluster: LocalCluster, single_servers: Settings
) -> None:
    # A generous read deadline: on a loaded test machine a slow reply is not what this test is about.
    async with services_on(
        own_cluster, single_servers, celebrity_threshold=20, redis_read_timeout_ms=5000
    ) as services:
        world = await World.make(services)
        await world.check()
        slots = sorted(set(world.timeline_slots()))
        masters = own_cluster.masters()
        owners = {slot: await _owner_port(services, slot) for slot in slots}
        source = max(masters, key=lambda m: sum(1 for p in owners.values() if p == m.port))
        target = next(m for m in masters if m is not source)
        moving = [slot for slot in slots if owners[slot] == source.port]
        assert moving
        fallbacks = redis_fallbacks()
        rounds = 0

        async def load() -> None:
            # A post, its fan-out, and reads: each meets the slot in its current state.
            nonlocal rounds
            await world.post()
            await world.drain()
            await world.check(world.rng.sample(world.users, 8))
            rounds += 1

        source_id, target_id = (
            own_cluster.call(source, "CLUSTER", "MYID"),
            own_cluster.call(target, "CLUSTER", "MYID"),
        )
        for slot in moving:
            # What `valkey-cli --cluster reshard` does per slot, with load between every step.
            own_cluster.call(target, "CLUSTER", "SETSLOT", str(slot), "IMPORTING", source_id)
            own_cluster.call(source, "CLUSTER", "SETSLOT", str(slot), "MIGRATING", target_id)
            await load()  # keys created now are created on the target (ASK)
            while keys := own_cluster.call(source, "CLUSTER", "GETKEYSINSLOT", str(slot), "1").split():
                own_cluster.call(
                    source, "MIGRATE", "127.0.0.1", str(target.port), "", "0", "5000", "KEYS", *keys
                )
                await load()  # a moved key answers ASK on the source
            for master in masters:
                own_cluster.call(master, "CLUSTER", "SETSLOT", str(slot), "NODE", target_id)
            await load()  # the source answers MOVED
        await world.drain()
        assert await world.outbox_left() == 0 and await world.dead_jobs() == 0
        await world.check_everything()
        # The slots did move, and every read followed them (ASK, MOVED) instead of falling back.
        assert all([await _owner_port(services, slot) == target.port for slot in moving])
        assert redis_fallbacks() == fallbacks, "a read fell back to PostgreSQL during the resharding"
        assert rounds >= 2 * len(moving)


async def _owner_port(services: Services, slot: int) -> int:
    """The port of the master serving a slot now."""
    assert services.feeds.slots is not None
    await services.feeds.slots.reload()
    return (await services.feeds.slots.owner(slot)).port


async def test_a_killed_master_falls_back_to_postgresql_until_failover_and_loses_nothing(
    own_cluster: LocalCluster, single_servers: Settings
) -> None:
    async with services_on(own_cluster, single_servers, celebrity_threshold=20) as services:
        world = await World.make(services)
        await world.check()
        slots = world.timeline_slots()
        masters = [n.port for n in own_cluster.masters()]
        held = {port: 0 for port in masters}
        for slot in slots:
            held[await _owner_port(services, slot)] += 1
        # Not the node the URL names: the test's own clean-up connects through it afterwards.
        held.pop(own_cluster.nodes[0].port, None)
        victim = next(n for n in own_cluster.nodes if n.port == max(held, key=lambda p: held[p]))
        fallbacks = redis_fallbacks()
        own_cluster.kill(victim)
        killed_at = time.monotonic()
        # While the cluster notices and promotes the replica: posts keep being acknowledged and
        # fanned out where possible, and every feed read equals the pull query (from PostgreSQL
        # when its master is gone), but for posts whose fan-out job failed and awaits its retry.
        promoted = False
        while time.monotonic() - killed_at < 60:
            await world.post()
            await world.drain()
            await world.check(world.rng.sample(world.users, 8), lagging=True)
            if victim.port not in [n.port for n in own_cluster.masters()] and len(own_cluster.masters()) == 3:
                promoted = True
                break
            await asyncio.sleep(0.2)
        assert promoted, "the replica was not promoted within a minute"
        assert redis_fallbacks() > fallbacks, "no read noticed the dead master"
        own_cluster.wait_healthy()
        # After the failover: the failed jobs are retried and everything is back in Redis.
        deadline = time.monotonic() + 60
        while await world.outbox_left() and time.monotonic() < deadline:
            await world.drain()
            await asyncio.sleep(0.5)
        assert await world.outbox_left() == 0 and await world.dead_jobs() == 0
        await asyncio.sleep(services.settings.redis_breaker_ms / 1000)
        await world.check_everything()
        recovered = redis_fallbacks()
        await world.check()
        assert redis_fallbacks() == recovered, "reads still fall back to PostgreSQL after the failover"


async def test_a_master_lost_with_a_stalled_replica_falls_back_and_loses_no_acknowledged_post(
    single_servers: Settings,
) -> None:
    # The replica stalls (SIGSTOP) before its master dies, so the writes made meanwhile exist only
    # on the master, and the replica promoted afterwards lacks them. A node timeout of a minute
    # keeps the cluster from marking the stalled replica failed or failing over on its own: the
    # test promotes it itself, after checking the window in between.
    with local_cluster(node_timeout_ms=60_000) as cluster:
        async with services_on(cluster, single_servers, celebrity_threshold=20) as services:
            world = await World.make(services)
            await world.check()  # every timeline built (trusted), and on a replica before the stall
            await services.feeds.replicated()
            slots = world.timeline_slots()
            held: dict[int, list[int]] = {}
            for user, slot in zip(world.users, slots, strict=True):
                held.setdefault(await _owner_port(services, slot), []).append(user)
            held.pop(cluster.nodes[0].port, None)  # the test's clean-up connects through that node
            victim = next(n for n in cluster.nodes if n.port == max(held, key=lambda p: len(held[p])))
            on_victim = held[victim.port]
            replica = cluster.replica_of(victim)

            cluster.pause(replica)
            # More than the sockets between them buffer, so what the master replicates next stays
            # in its own memory, and dies with it.
            await _fill_replication_link(services, victim.port)
            stalled = [await world.post() for _ in range(6)]
            await world.drain()
            # The replica has none of these writes: their jobs are not done (the barrier failed).
            assert await world.pending_posts() >= set(stalled)
            await world.check()  # the master still serves every timeline

            cluster.kill(victim)
            cluster.resume(replica)
            cluster.call(replica, "CONFIG", "SET", "cluster-replica-no-failover", "yes")
            # The window before a replica is promoted: posts are acknowledged, their fan-out jobs
            # fail where they touch the dead master, and every feed equals the pull query exactly
            # (the dead master's users read from PostgreSQL).
            fallbacks = redis_fallbacks()
            for _ in range(4):
                await world.post()
                await world.drain()
                await world.check()
            await world.check(on_victim)
            assert redis_fallbacks() > fallbacks, "no read noticed the dead master"

            assert cluster.call(replica, "CLUSTER", "FAILOVER", "TAKEOVER") == "OK"
            deadline = time.monotonic() + 60
            while victim.port in [await _owner_port(services, s) for s in set(slots)]:
                assert time.monotonic() < deadline, "the cluster did not agree on the promoted replica"
                await asyncio.sleep(0.2)
            # The promoted replica lacks the stalled posts; their jobs, redone, put them back.
            while await world.outbox_left():
                assert time.monotonic() < deadline, "fan-out jobs were not redone after the promotion"
                await world.drain()
                await asyncio.sleep(0.5)
            assert await world.dead_jobs() == 0
            await asyncio.sleep(services.settings.redis_breaker_ms / 1000)
            await world.check_everything()
            for post in stalled:
                author = world.acked[post]
                followers = await services.pool.fetch(
                    "SELECT follower_id FROM followers WHERE followee_id = $1", author
                )
                for viewer in [author, *(r["follower_id"] for r in followers)]:
                    assert post in (await services.feeds.home(viewer, 100, None)).post_ids


async def _fill_replication_link(services: Services, port: int) -> None:
    """Write 64 MiB to a master (a key of its slots), more than a loopback connection buffers."""
    assert services.feeds.slots is not None
    masters = await services.feeds.slots.masters()
    tag = next(tag for address, (tag, _) in masters.items() if address.port == port)
    node = Redis(host="127.0.0.1", port=port)
    try:
        await node.set(b"filler:{" + tag + b"}", b"x" * (64 << 20))
    finally:
        await node.aclose()
