"""The fast paths on a cluster: reads and fan-out appends reach every master, and follow a slot that
moves (ASK while it migrates, MOVED after) with a map that still names its old owner."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
from redis.asyncio.cluster import RedisCluster

from homefeed.bench.valkey_cluster import LocalCluster, Node, local_cluster
from homefeed.feed.timeline.bulk_writer import NoReply
from homefeed.feed.timeline.cluster_reads import ClusterReads
from homefeed.feed.timeline.cluster_writer import ClusterBulkWriter, ReplicaLagging
from homefeed.feed.timeline.encoding import decode, encode_id
from homefeed.feed.timeline.keys import Keys
from homefeed.feed.timeline.slots import SlotMap, key_slot


@pytest.fixture
def own_cluster() -> Iterator[LocalCluster]:
    with local_cluster() as cluster:
        yield cluster


def _node(cluster: LocalCluster, port: int) -> Node:
    return next(n for n in cluster.nodes if n.port == port)


async def test_reads_and_appends_follow_a_slot_as_it_migrates_and_after(own_cluster: LocalCluster) -> None:
    slots = SlotMap(own_cluster.url)
    reads, writer = ClusterReads(slots), ClusterBulkWriter(slots)
    client = RedisCluster.from_url(own_cluster.url)
    keys = [b"t:{%d}:tl" % u for u in range(300)]
    try:
        appended = await writer.append(keys, encode_id(1), ttl=60, max_bytes=10_000)
        assert appended.written == len(keys)
        owners = {await slots.owner(key_slot(k)) for k in keys}
        assert len(owners) == 3  # the keys spread over every master
        assert [await reads.get(k.decode()) for k in keys] == [encode_id(1)] * len(keys)

        # Migrate a key's slot to another master, the way valkey-cli reshard does.
        moving = keys[0]
        slot = key_slot(moving)
        source = _node(own_cluster, (await slots.owner(slot)).port)
        target = next(n for n in own_cluster.masters() if n.port != source.port)
        source_id, target_id = (
            own_cluster.call(source, "CLUSTER", "MYID"),
            own_cluster.call(target, "CLUSTER", "MYID"),
        )
        own_cluster.call(target, "CLUSTER", "SETSLOT", str(slot), "IMPORTING", source_id)
        own_cluster.call(source, "CLUSTER", "SETSLOT", str(slot), "MIGRATING", target_id)
        own_cluster.call(
            source, "MIGRATE", "127.0.0.1", str(target.port), "", "0", "5000", "KEYS", moving.decode()
        )
        # The map still names the source, which answers ASK for the moved key.
        assert (await slots.owner(slot)).port == source.port
        assert await reads.get(moving.decode()) == encode_id(1)
        assert await reads.get_with_ttl(moving.decode()) == (encode_id(1), await client.ttl(moving))
        await writer.append([moving], encode_id(2), ttl=60, max_bytes=10_000)
        created = b"t:{%d}:new" % int(moving.split(b"{")[1].split(b"}")[0])
        await writer.append([created], encode_id(3), ttl=60, max_bytes=10_000)  # created on the target
        for master in own_cluster.masters():
            own_cluster.call(master, "CLUSTER", "SETSLOT", str(slot), "NODE", target_id)
        # Now the source answers MOVED: the map learns the new owner.
        assert await reads.get(moving.decode()) == encode_id(1) + encode_id(2)
        assert (await slots.owner(slot)).port == target.port
        assert await reads.get(created.decode()) == encode_id(3)
    finally:
        reads.close()
        await writer.close()
        await client.aclose()


async def test_appends_routed_by_the_callers_ids_go_where_the_keys_slots_are(
    valkey_cluster: LocalCluster,
) -> None:
    writer = ClusterBulkWriter(SlotMap(valkey_cluster.url))
    ids = list(range(10**12, 10**12 + 500))
    keys = Keys("ids-route").timelines(ids)
    client = RedisCluster.from_url(valkey_cluster.url)
    try:
        assert await writer._route(keys, ids) == await writer._route(keys)
        appended = await writer.append(keys, encode_id(5), ttl=60, max_bytes=10_000, tags=ids)
        assert appended.written == len(keys) and appended.overgrown == []
        # Created by these appends: each has the entry and an expiry.
        for key in keys[:50]:
            assert await client.get(key) == encode_id(5)
            assert 0 < await client.ttl(key) <= 60
    finally:
        await writer.close()
        for key in keys:
            await client.delete(key)
        await client.aclose()


async def _barrier_passes(writer: ClusterBulkWriter) -> None:
    """The replication barrier as a job's retries see it: a replica still catching up (a fresh
    cluster's first sync, or its master just resumed) is ReplicaLagging, and the job is redone."""
    async with asyncio.timeout(30):
        while True:
            try:
                await writer.replicated()
                return
            except ReplicaLagging:
                await asyncio.sleep(0.2)


async def test_a_paused_master_fails_appends_and_the_barrier_in_bounded_time_and_the_retry_lands() -> None:
    # A minute's node timeout: the cluster does not fail the paused master over; it just hangs.
    with local_cluster(node_timeout_ms=60_000) as cluster:
        writer = ClusterBulkWriter(SlotMap(cluster.url), timeout=1.0)
        client = RedisCluster.from_url(cluster.url)
        try:
            keys = Keys("paused").timelines(range(1, 301))  # on every master
            await writer.append(keys, encode_id(1), ttl=60, max_bytes=10_000)
            await _barrier_passes(writer)
            victim = cluster.masters()[0]
            cluster.pause(victim)
            try:
                for call in (
                    lambda: writer.append(keys, encode_id(2), ttl=60, max_bytes=10_000),
                    writer.replicated,
                ):
                    started = time.monotonic()
                    with pytest.raises(NoReply):
                        async with asyncio.timeout(20):  # without a bound, the call waits forever
                            await call()
                    assert time.monotonic() - started < 4
            finally:
                cluster.resume(victim)
            # The batch redone once the master is back: every write lands, the barrier passes.
            await writer.append(keys, encode_id(2), ttl=60, max_bytes=10_000)
            await _barrier_passes(writer)
            for key in keys:
                raw = await client.get(key)
                assert isinstance(raw, bytes) and set(decode(raw).ids.tolist()) == {1, 2}
        finally:
            await writer.close()
            await client.aclose()
