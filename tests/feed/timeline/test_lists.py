from __future__ import annotations

import random

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from redis.asyncio import Redis

from homefeed.feed.services import Services
from homefeed.feed.timeline.bulk_writer import BulkWriter
from homefeed.feed.timeline.keys import Keys, decode_id, encode_id
from homefeed.feed.timeline.lists import BUILT, Blob, IdLists, ListQuery, below, built, decode, encode

MAX_ID = 2**53 - 1


def test_id_encoding_sorts_like_the_numbers() -> None:
    ids = [1, 255, 256, 2**40, MAX_ID]
    entries = [encode_id(i) for i in ids]
    assert sorted(entries) == entries
    assert [decode_id(m) for m in entries] == ids


@given(st.lists(st.integers(1, MAX_ID), max_size=50), st.one_of(st.none(), st.integers(0, MAX_ID)))
def test_stored_lists_decode_sorted_distinct_and_above_their_floor(ids: list[int], floor: int | None) -> None:
    # Appends arrive in any order, repeated, and late (below the floor): readers see only what
    # the list vouches for.
    head = b"" if floor is None else bytes([BUILT]) + encode_id(floor)
    blob = decode(head + b"".join(encode_id(i) for i in ids))
    expected = sorted({i for i in ids if floor is None or i >= floor})
    assert blob.ids.tolist() == expected
    assert blob.built == (floor is not None)
    again = decode(encode(blob))
    assert (again.flags, again.floor, again.ids.tolist()) == (blob.flags, blob.floor, expected)


def test_reads_report_the_end_of_history_only_for_whole_lists() -> None:
    ids = np.array([3, 5, 7, 9], dtype=np.int64)
    assert below(built(ids, whole_history=True), 7, 10, 60).ids == [5, 3, 0]
    assert below(built(ids, whole_history=False), 7, 10, 60).ids == [5, 3]
    assert below(built(ids, whole_history=True), None, 2, 60).ids == [9, 7]  # more below: no marker
    assert below(Blob(None, 0, ids), None, 10, 60).ids == [9, 7, 5, 3]  # untrusted: never the end


async def test_rebuild_then_read_pages_newest_first(services: Services) -> None:
    lists = IdLists(services.redis, size=10)
    key = Keys(services.settings.redis_prefix).timeline(1)
    await lists.rebuild(key, [5, 3, 9, 7], ttl=60, whole_history=True)
    (first,) = await lists.read([ListQuery(key, None, 2)])
    assert first.complete and first.ids == [9, 7]
    (rest,) = await lists.read([ListQuery(key, 7, 10)])
    assert rest.ids == [5, 3, 0]  # 0: nothing older exists
    (missing,) = await lists.read([ListQuery(key + "x", None, 5)])
    assert not missing.complete and missing.ids == [] and missing.ttl == -2


async def test_appends_are_idempotent_and_trimmed_back_to_the_newest(services: Services) -> None:
    lists = IdLists(services.redis, size=5)
    key = Keys(services.settings.redis_prefix).timeline(2)
    await lists.rebuild(key, [1, 2], ttl=60, whole_history=True)
    writer = BulkWriter(services.settings.redis_url or "")
    try:
        # Out of order and repeated, as racing workers and redone jobs deliver them.
        for post in [3, 4, 9, 5, 4, 6, 7, 8, 10, 11, 11, 12, 13, 14, 15]:
            appended = await writer.append([key.encode()], encode_id(post), ttl=60, max_bytes=lists.max_bytes)
            for overgrown in appended.overgrown:
                await lists.trim(overgrown.decode())
    finally:
        await writer.close()
    (whole,) = await lists.read([ListQuery(key, None, 100)])
    assert whole.complete and whole.ids[:5] == [15, 14, 13, 12, 11]
    assert 0 not in whole.ids  # trimmed: it no longer holds all history
    # A slow worker's post lands below the floor the trims raised: readers ignore it.
    await services.redis.append(key, encode_id(1))
    (late,) = await lists.read([ListQuery(key, None, 100)])
    assert 1 not in late.ids
    await lists.trim(key)
    (trimmed,) = await lists.read([ListQuery(key, None, 100)])
    assert trimmed.ids == [15, 14, 13, 12, 11]
    assert 0 < trimmed.ttl <= 60


async def test_appends_create_missing_lists_untrusted_and_expiring(services: Services) -> None:
    key = Keys(services.settings.redis_prefix).timeline(3)
    writer = BulkWriter(services.settings.redis_url or "")
    try:
        await writer.append([key.encode()], encode_id(42), ttl=60, max_bytes=10_000)
    finally:
        await writer.close()
    (read,) = await IdLists(services.redis, 5).read([ListQuery(key, None, 5)])
    # A write that beat the rebuild: kept (a rebuild merges it), but not trusted as a timeline.
    assert not read.complete and read.ids == [42]
    assert 0 < read.ttl <= 60
    await IdLists(services.redis, 5).rebuild(key, [7], ttl=60, whole_history=True)
    (built,) = await IdLists(services.redis, 5).read([ListQuery(key, None, 5)])
    assert built.complete and built.ids == [42, 7, 0]


async def test_backfill_and_removal_keep_flags_honest(services: Services) -> None:
    lists = IdLists(services.redis, size=4)
    key = Keys(services.settings.redis_prefix).timeline(4)
    await lists.rebuild(key, [10, 20], ttl=60, whole_history=True)
    await lists.add(key, [15], ttl=60, more_before=False)
    assert (await lists.read([ListQuery(key, None, 9)]))[0].ids == [20, 15, 10, 0]
    await lists.add(key, [16], ttl=60, more_before=True)
    # The followee has older posts than 16: the list now vouches only down to 16.
    assert (await lists.read([ListQuery(key, None, 9)]))[0].ids == [20, 16]
    await lists.add(key, [12, 18], ttl=60, more_before=False)  # 12 is below the floor: left out
    assert (await lists.read([ListQuery(key, None, 9)]))[0].ids == [20, 18, 16]
    await lists.remove(key, [18, 20])
    assert (await lists.read([ListQuery(key, None, 9)]))[0].ids == [16]
    await lists.remove(key + "missing", [1])
    assert not await services.redis.exists(key + "missing")


async def test_full_timeline_costs_at_most_20_bytes_an_entry(services: Services) -> None:
    size = 800
    lists = IdLists(services.redis, size)
    keys = Keys(services.settings.redis_prefix)
    rng = random.Random(7)
    total = entries = 0
    for user in range(50):
        ids = rng.sample(range(2**45, 2**53), size)
        await lists.rebuild(keys.timeline(user), ids, ttl=600, whole_history=False)
        total += await services.redis.memory_usage(keys.timeline(user), samples=0) or 0
        entries += size
    assert total / entries <= 20


async def test_memory_check_would_catch_a_default_sorted_set(services: Services) -> None:
    # The comparison the encoding is chosen against: decimal members with id scores.
    redis: Redis = services.redis
    key = f"{services.settings.redis_prefix}:plain"
    rng = random.Random(8)
    await redis.zadd(key, {str(i): i for i in rng.sample(range(2**45, 2**53), 800)})
    assert (await redis.memory_usage(key, samples=0) or 0) / 800 > 20
