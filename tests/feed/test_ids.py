"""Ids minted by the database: below 2**53, increasing, and carrying their time."""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, datetime, timedelta

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from homefeed.feed import ids
from homefeed.feed.services import Services
from homefeed.seed.generate import mint_post_ids


async def test_db_ids_fit_a_double_and_increase(services: Services) -> None:
    before = datetime.now(UTC)
    minted: list[int] = []
    for _ in range(5):
        minted += [
            r["id"] for r in await services.pool.fetch("SELECT next_id() AS id FROM generate_series(1, 50)")
        ]
    after = datetime.now(UTC)
    assert all(0 < i < 2**53 for i in minted)
    assert all(float(i) == i for i in minted)
    assert minted == sorted(minted) and len(set(minted)) == len(minted)
    slack = timedelta(milliseconds=5)
    assert all(before - slack <= ids.id_time(i) <= after + slack for i in minted)


async def test_post_ids_increase_and_created_at_matches(services: Services) -> None:
    user = await services.users.create("ids", "Ids", "x")
    posts = [await services.posts.create(user.id, f"post {n}") for n in range(10)]
    assert [p.id for p in posts] == sorted(p.id for p in posts)
    for p in posts:
        assert p.id < ids.MAX_ID
        assert p.created_at == ids.id_time(p.id)


def test_layout_round_trips() -> None:
    ms = 1_750_000_000_123
    made = ids.make_id(ms, 17)
    assert ids.id_ms(made) == ms
    assert ids.lowest_id_at(ms) <= made < ids.lowest_id_at(ms + 1)
    # The layout stays below 2**53 for decades: the 41-bit millisecond field runs out in ~2093.
    assert ids.make_id(ids.EPOCH_MS + 2**41 - 1, 4095) == ids.MAX_ID


async def test_db_post_ids_carry_their_authors_shard(services: Services) -> None:
    authors = [await services.users.create(f"shard{n}", "Shard", "x") for n in range(3)]
    for author in authors:
        post = await services.posts.create(author.id, "where do I live")
        assert ids.shard_of(post.id) == ids.shard_of(author.id)
        assert await services.pool.fetchval("SELECT next_post_id($1) & 63", author.id) == ids.shard_of(
            author.id
        )


_MS = st.integers(ids.EPOCH_MS, ids.EPOCH_MS + 2**41 - 1)
_SEQ = st.integers(0, 2**ids.POST_SEQUENCE_BITS - 1)
_USER = st.integers(1, ids.MAX_ID)


@given(_MS, _SEQ, _USER)
def test_post_ids_fit_a_double_name_their_shard_and_keep_their_time(ms: int, seq: int, author: int) -> None:
    made = ids.make_post_id(ms, seq, author)
    assert 0 <= made <= ids.MAX_ID and float(made) == made
    assert ids.shard_of(made) == ids.shard_of(author)
    assert ids.id_ms(made) == ms
    assert ids.lowest_id_at(ms) <= made < ids.lowest_id_at(ms + 1)


@given(_MS, _SEQ, _USER, _MS, _SEQ, _USER)
def test_post_ids_sort_by_time_first(ms1: int, s1: int, a1: int, ms2: int, s2: int, a2: int) -> None:
    first, second = ids.make_post_id(ms1, s1, a1), ids.make_post_id(ms2, s2, a2)
    if ms1 < ms2:
        assert first < second
    if (ms1, s1) != (ms2, s2):
        assert first != second  # one sequence per millisecond: no two posts share an id


@given(st.lists(st.tuples(st.integers(0, 5_000), _USER), min_size=1, max_size=300))
def test_seeded_post_ids_increase_and_name_their_shard(posts: list[tuple[int, int]]) -> None:
    posts.sort(key=lambda p: p[0])
    ms = np.array([ids.EPOCH_MS + 10**9 + t for t, _ in posts], dtype=np.int64)
    authors = np.array([a for _, a in posts], dtype=np.int64)
    minted = mint_post_ids(ms, authors).tolist()
    assert all(a < b for a, b in itertools.pairwise(minted))
    assert [ids.shard_of(i) for i in minted] == [ids.shard_of(a) for _, a in posts]
    assert all(ids.id_ms(i) >= m for i, m in zip(minted, ms.tolist(), strict=True))


async def test_post_ids_stay_unique_when_minting_collides(services: Services) -> None:
    """Drive the id sequence back over and over while posts are created: ids must stay distinct.

    Rewinding the sequence makes concurrent mints in one millisecond draw the same sequence
    bits, which is what more than 64 posts per millisecond, or a clock stepping back, would do.
    Two authors share a logical shard, so their ids can collide across authors too (nothing
    but minting keeps those apart: a sharded store has no unique index on post ids).
    """
    by_shard: dict[int, list[int]] = {}
    while not any(len(users) >= 2 for users in by_shard.values()):
        user = await services.users.create(f"mint{sum(map(len, by_shard.values()))}", "Mint", "x")
        by_shard.setdefault(ids.shard_of(user.id), []).append(user.id)
    authors = next(users for users in by_shard.values() if len(users) >= 2)[:2]
    done = asyncio.Event()

    async def rewind() -> None:
        async with services.pool.acquire() as conn:
            while not done.is_set():
                await conn.execute("SELECT setval('id_sequence', 1, false)")

    async def write(worker: int) -> list[int]:
        return [
            (await services.posts.create(authors[(worker + n) % 2], f"w{worker} n{n}")).id for n in range(40)
        ]

    rewinder = asyncio.create_task(rewind())
    try:
        minted = [i for batch in await asyncio.gather(*(write(w) for w in range(8))) for i in batch]
    finally:
        done.set()
        await rewinder
    assert len(minted) == 320
    assert len(set(minted)) == len(minted)
    stored = await services.pool.fetchval(
        "SELECT count(DISTINCT id) FROM posts WHERE author_id = ANY($1)", authors
    )
    assert stored == len(minted)


@given(st.integers(min_value=0, max_value=ids.MAX_ID))
def test_id_time_is_the_instant_of_the_ids_milliseconds(post_id: int) -> None:
    expected = datetime.fromtimestamp(ids.id_ms(post_id) / 1000, tz=UTC)
    got = ids.id_time(post_id)
    assert got == expected and got.tzinfo is UTC
    assert got.isoformat() == expected.isoformat()
