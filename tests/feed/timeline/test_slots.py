"""Slot routing: our CRC16 slots agree with the server's, redirects parse, the map follows the cluster."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ResponseError

from homefeed.bench.valkey_cluster import LocalCluster
from homefeed.feed.timeline.keys import Keys
from homefeed.feed.timeline.slots import Address, Redirect, SlotMap, id_slots, key_slot, node_url, redirect_of

TAGGED = st.from_regex(rb"[a-z]{0,4}\{[0-9a-z]{0,6}\}[:a-z{}]{0,6}", fullmatch=True)


@given(st.lists(st.binary(max_size=24) | TAGGED, max_size=30))
async def test_key_slots_agree_with_the_server(valkey_cluster: LocalCluster, keys: list[bytes]) -> None:
    # Hash tags included: an empty tag ("{}") hashes the whole key, only the first tag counts.
    client = Redis.from_url(valkey_cluster.url)  # one node's own answer, not a client's computation
    try:
        for key in keys:
            slot = await client.execute_command("CLUSTER", "KEYSLOT", key)  # type: ignore[no-untyped-call]
            assert key_slot(key) == slot
    finally:
        await client.aclose()


def test_redirects_parse_and_other_errors_are_not_redirects() -> None:
    assert redirect_of(ResponseError("MOVED 3999 127.0.0.1:6381")) is not None
    moved = redirect_of(ResponseError("MOVED 3999 127.0.0.1:6381"))
    assert moved is not None and (moved.ask, moved.slot, moved.address) == (
        False,
        3999,
        Address("127.0.0.1", 6381),
    )
    ask = redirect_of(ResponseError("ASK 12 10.0.0.7:7000"))
    assert ask is not None and ask.ask and ask.address == Address("10.0.0.7", 7000)
    assert redirect_of(ResponseError("WRONGTYPE Operation against a key holding the wrong kind")) is None


def test_node_urls_keep_credentials_and_scheme() -> None:
    assert (
        node_url("rediss://u:p%40ss@seed:7000/0", Address("10.0.0.2", 7001))
        == "rediss://u:p%40ss@10.0.0.2:7001/0"
    )
    assert node_url("redis://seed:7000", Address("h", 1)) == "redis://h:1/0"


async def test_the_map_names_the_master_the_server_does(valkey_cluster: LocalCluster) -> None:
    slots = SlotMap(valkey_cluster.url)
    client = RedisCluster.from_url(valkey_cluster.url)
    try:
        await client.initialize()
        for slot in (0, 5460, 5461, 10922, 10923, 16383):
            owner = await slots.owner(slot)
            node = client.nodes_manager.get_node_from_slot(slot)
            assert (owner.host, owner.port) == (node.host, node.port)
        masters = await slots.masters()
        assert len(masters) == 3
        for address, (tag, replicas) in masters.items():
            assert await slots.owner(key_slot(tag)) == address
            assert replicas == 1
    finally:
        await client.aclose()


@given(st.lists(st.integers(0, 2**63 - 1), max_size=40), st.text(max_size=8))
def test_id_slots_are_the_slots_of_timeline_keys_tagged_with_the_ids(ids: list[int], prefix: str) -> None:
    keys = Keys(prefix)
    if keys.tags_are_ids:
        assert list(id_slots(ids)) == [key_slot(k) for k in keys.timelines(ids)]
    else:
        assert "{" in prefix  # the first "{" is the prefix's: the user id is not the tag


async def test_routes_index_the_same_masters_as_the_map(valkey_cluster: LocalCluster) -> None:
    slots = SlotMap(valkey_cluster.url)
    index, masters = await slots.routes()
    owners = await slots.owners()
    assert [masters[i] for i in index] == owners
    assert sorted(masters, key=str) == sorted(set(owners), key=str)
    # A MOVED reply (here a false one) changes the map: the routes stay the map's, reloaded or not.
    slots.moved(Redirect(False, 0, next(m for m in masters if m != owners[0])))
    index, masters = await slots.routes()
    assert [masters[i] for i in index] == await slots.owners()
