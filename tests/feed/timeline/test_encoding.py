"""The stored form of a list: fixed-width ids, the header, floors, bounds, and what it costs in Redis."""

from __future__ import annotations

import random

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from homefeed.feed.redis_client import RedisClient
from homefeed.feed.services import Services
from homefeed.feed.timeline.encoding import (
    BUILT,
    HEADER_BYTES,
    ID_BYTES,
    Blob,
    bounded,
    built,
    decode,
    decode_id,
    encode,
    encode_id,
    max_bytes,
)
from homefeed.feed.timeline.keys import Keys
from homefeed.feed.timeline.lists import IdLists
from homefeed.feed.timeline.writes import TimelineWrites

MAX_ID = 2**53 - 1


def ids(*values: int) -> np.ndarray[tuple[int], np.dtype[np.int64]]:
    return np.array(values, dtype=np.int64)


def test_id_encoding_sorts_like_the_numbers() -> None:
    values = [1, 255, 256, 2**40, MAX_ID]
    entries = [encode_id(i) for i in values]
    assert sorted(entries) == entries
    assert all(len(e) == ID_BYTES for e in entries)
    assert [decode_id(m) for m in entries] == values


@given(st.lists(st.integers(1, MAX_ID), max_size=50), st.one_of(st.none(), st.integers(0, MAX_ID)))
def test_stored_lists_decode_sorted_distinct_and_above_their_floor(
    values: list[int], floor: int | None
) -> None:
    # Appends arrive in any order, repeated, and late (below the floor): readers see only what
    # the list vouches for.
    head = b"" if floor is None else bytes([BUILT]) + encode_id(floor)
    blob = decode(head + b"".join(encode_id(i) for i in values))
    expected = sorted({i for i in values if floor is None or i >= floor})
    assert blob.ids.tolist() == expected
    assert blob.built == (floor is not None)
    again = decode(encode(blob))
    assert (again.flags, again.floor, again.ids.tolist()) == (blob.flags, blob.floor, expected)


def test_the_header_is_there_exactly_when_a_rebuild_wrote_the_list() -> None:
    plain = encode(Blob(None, 0, ids(5, 9)))
    assert len(plain) == 2 * ID_BYTES
    headed = encode(built(ids(5, 9), whole_history=False))
    assert len(headed) == HEADER_BYTES + 2 * ID_BYTES
    assert len(headed) % ID_BYTES == 1
    assert decode(None) == Blob(None, 0, decode(b"").ids)
    assert not decode(plain).built and decode(headed).built


def test_built_lists_vouch_down_to_their_oldest_id_or_all_history() -> None:
    whole = built(ids(3, 7), whole_history=True)
    assert whole.built and whole.whole and whole.floor == 0
    partial = built(ids(3, 7), whole_history=False)
    assert partial.built and not partial.whole and partial.floor == 3


def test_bounding_keeps_the_newest_and_raises_the_floor() -> None:
    blob = built(ids(1, 2, 3, 4, 5), whole_history=True)
    kept = bounded(blob, 3)
    assert kept.ids.tolist() == [3, 4, 5]
    assert kept.floor == 3 and not kept.whole
    assert bounded(blob, 5) is blob
    # Ids below the floor are dropped when a list takes new ids.
    assert kept.with_ids(ids(1, 3, 6)).ids.tolist() == [3, 6]


def test_lists_are_rewritten_only_past_their_bound_plus_slack() -> None:
    assert max_bytes(800) == HEADER_BYTES + 1200 * ID_BYTES
    # Tiny lists still get a few appends of slack, so a trim is not due on every append.
    assert max_bytes(3) == HEADER_BYTES + 11 * ID_BYTES


async def test_full_timeline_costs_at_most_20_bytes_an_entry_throughout_its_write_cycle(
    services: Services,
) -> None:
    # Not only as rewritten: the first append to outgrow the string doubles its allocation, and
    # the doubled string is what a timeline holds until its next trim. So the whole cycle counts:
    # rebuilt, then appended to through the fan-out path up to its bound and trimmed.
    size = 800
    lists = IdLists(services.redis, size)
    keys = Keys(services.settings.redis_prefix)
    writes = TimelineWrites(
        services.redis, services.settings.redis_url, keys, lists, timeline_ttl=600, recent_ttl=600
    )
    rng = random.Random(7)
    users = list(range(50))
    for user in users:
        values = rng.sample(range(2**45, 2**52), size)
        await lists.rebuild(keys.timeline(user), values, ttl=600, whole_history=False)

    async def per_entry() -> float:
        used = [await services.redis.memory_usage(keys.timeline(u), samples=0) or 0 for u in users]
        return sum(used) / (len(users) * size)

    worst = await per_entry()
    cycle = (max_bytes(size) - HEADER_BYTES) // ID_BYTES - size + 1  # appends until the trim
    try:
        for n in range(cycle):
            await writes.push(users, 2**52 + n)
            if n % 25 == 0 or n >= cycle - 2:
                worst = max(worst, await per_entry())
    finally:
        await writes.close()
    lengths = [await services.redis.strlen(keys.timeline(u)) for u in users]
    assert lengths == [HEADER_BYTES + size * ID_BYTES] * len(users)  # the last append trimmed them
    assert worst <= 20


async def test_memory_check_would_catch_a_default_sorted_set(services: Services) -> None:
    # The comparison the encoding is chosen against: decimal members with id scores.
    redis: RedisClient = services.redis
    key = f"{services.settings.redis_prefix}:plain"
    rng = random.Random(8)
    await redis.zadd(key, {str(i): i for i in rng.sample(range(2**45, 2**53), 800)})
    assert (await redis.memory_usage(key, samples=0) or 0) / 800 > 20
