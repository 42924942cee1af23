"""VisibleReads: concurrent visibility reads sharing statements."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import pytest
from hypothesis import given
from hypothesis import strategies as st

from homefeed.feed.services import Services
from homefeed.feed.store.pool import Lanes, create_pool
from homefeed.feed.store.visible import COLUMNS, SESSION, VISIBLE, VisibleReads


@dataclass
class Graph:
    """Four users and their posts: 0 follows 1 and 2, mutes 2; 3 blocks 0; 1 follows 3."""

    users: list[int]
    posts: list[int]  # oldest first
    liked: int  # a post user 0 likes


@pytest.fixture
async def graph(services: Services) -> Graph:
    users = [(await services.users.create(f"u{i}", f"U{i}", "x")).id for i in range(4)]
    u0, u1, u2, u3 = users
    await services.relations.follow(u0, u1)
    await services.relations.follow(u0, u2)
    await services.relations.follow(u0, u3)
    await services.relations.mute(u0, u2)
    await services.relations.follow(u1, u3)
    posts = []
    for i in range(12):
        posts.append((await services.posts.create(users[i % 4], f"post {i}")).id)
    await services.relations.block(u3, u0)
    await services.likes.like(u0, posts[1])
    await services.posts.delete(users[1], posts[5])
    return Graph(users, posts, posts[1])


@pytest.fixture
async def reads(services: Services) -> AsyncIterator[VisibleReads]:
    made = VisibleReads(services.pool, connections=1)
    yield made
    await made.close()


def ids_of(rows: list[asyncpg.Record]) -> list[int]:
    return [r["id"] for r in rows]


async def test_filters_and_flags_likes_like_the_rules_say(graph: Graph, reads: VisibleReads) -> None:
    u0, u1, u2, _ = graph.users
    rows = await reads.rows(u0, graph.posts, 100)
    # u0 sees their own posts and u1's; not u2's (muted), u3's (u3 blocks u0), nor the deleted one.
    expected = [p for i, p in enumerate(graph.posts) if i % 4 in (0, 1) and i != 5][::-1]
    assert ids_of(rows) == expected
    assert [r["liked"] for r in rows] == [p == graph.liked for p in expected]
    first = rows[0]
    assert tuple(first.keys()) == ("ord", *COLUMNS)
    assert first["author_id"] == u1 and first["id"] == graph.posts[9]  # the newest visible
    # The limit keeps the newest.
    assert ids_of(await reads.rows(u0, graph.posts, 2)) == expected[:2]
    # An unknown viewer sees nothing, even their "own" candidates.
    assert await reads.rows(max(graph.users) + 1000, graph.posts, 100) == []
    assert await reads.rows(u2, [], 10) == []


async def test_concurrent_reads_share_statements_and_get_their_own_answers(
    graph: Graph, reads: VisibleReads
) -> None:
    alone = [await reads.rows(v, graph.posts, 100) for v in graph.users]
    before = reads.batches
    together = await asyncio.gather(*(reads.rows(v, graph.posts, 100) for v in graph.users * 5))
    assert [ids_of(r) for r in together] == [ids_of(r) for r in alone] * 5
    assert reads.batches - before < len(together)  # one connection: the rest queued and shared


async def test_its_statement_is_planned_once_for_every_batch_without_bitmap_scans(
    services: Services, graph: Graph
) -> None:
    # A custom plan per execution would cost about 1 ms each, and bitmap scans cost more than
    # the viewer's few mutes, blocks and likes (see SESSION).
    assert SESSION["plan_cache_mode"] == "force_generic_plan"
    lanes = Lanes(services.pool, size=1, session=SESSION)
    try:
        args = ([graph.users[0]], [1], [len(graph.posts)], [5], graph.posts)
        plan = "\n".join(r[0] for r in await lanes.fetch("EXPLAIN " + VISIBLE, *args))
    finally:
        await lanes.close()
    assert "Index Only Scan using mutes_pkey" in plan and "Bitmap" not in plan, plan


@given(
    asks=st.lists(
        st.tuples(st.integers(0, 3), st.lists(st.integers(0, 11), max_size=12), st.integers(1, 12)),
        min_size=1,
        max_size=12,
    )
)
async def test_a_batch_answers_each_read_as_if_alone(
    graph: Graph, reads: VisibleReads, asks: list[tuple[int, list[int], int]]
) -> None:
    calls = [(graph.users[v], [graph.posts[i] for i in picks], limit) for v, picks, limit in asks]
    together = await asyncio.gather(*(reads.rows(*call) for call in calls))
    for call, rows in zip(calls, together, strict=True):
        assert ids_of(rows) == ids_of(await reads.rows(*call))


async def test_a_failed_statement_fails_its_batch_only(graph: Graph, reads: VisibleReads) -> None:
    u0 = graph.users[0]
    good = asyncio.ensure_future(reads.rows(u0, graph.posts, 3))
    bad = asyncio.ensure_future(reads.rows(u0, graph.posts, -1))  # LIMIT must not be negative
    results = await asyncio.gather(good, bad, return_exceptions=True)
    assert all(isinstance(r, asyncpg.PostgresError) for r in results)  # they shared the statement
    assert len(await reads.rows(u0, graph.posts, 3)) == 3


async def test_a_cancelled_read_leaves_the_others_their_answers(graph: Graph, reads: VisibleReads) -> None:
    u0 = graph.users[0]
    first = asyncio.ensure_future(reads.rows(u0, graph.posts, 1))
    cancelled = asyncio.ensure_future(reads.rows(u0, graph.posts, 2))
    last = asyncio.ensure_future(reads.rows(u0, graph.posts, 3))
    await asyncio.sleep(0)
    cancelled.cancel()
    assert [len(await first), len(await last)] == [1, 3]
    with pytest.raises(asyncio.CancelledError):
        await cancelled


async def test_close_answers_what_was_asked_then_refuses(services: Services, graph: Graph) -> None:
    pool = await create_pool(services.settings.database_url or "", min_size=1, max_size=3)
    reads = VisibleReads(pool, connections=1)
    u0 = graph.users[0]
    asked = [asyncio.ensure_future(reads.rows(u0, graph.posts, n)) for n in range(1, 6)]
    await asyncio.sleep(0)  # queued, not yet sent
    await reads.close()
    assert [len(await a) for a in asked] == [1, 2, 3, 4, 5]
    with pytest.raises(RuntimeError, match="closed"):
        await reads.rows(u0, graph.posts, 1)
    await asyncio.wait_for(pool.close(), 5)  # every connection went back


async def test_a_batch_answers_its_reads_together_after_its_hook_with_the_connection_free(
    services: Services, graph: Graph
) -> None:
    # The feed reads a batch's unknown authors in this hook: its reads wait for it together, and
    # the next batch's statement need not wait for it.
    gate, called = asyncio.Event(), asyncio.Event()
    seen: list[int] = []

    async def hook(rows: list[asyncpg.Record]) -> None:
        seen.append(len(rows))
        called.set()
        if len(seen) == 1:
            await gate.wait()

    reads = VisibleReads(services.pool, connections=1, before_answers=hook)
    try:
        u0 = graph.users[0]
        batch = [asyncio.ensure_future(reads.rows(u0, graph.posts, n)) for n in (1, 2)]
        await asyncio.wait_for(called.wait(), 5)
        assert seen == [3] and not any(b.done() for b in batch)
        later = await asyncio.wait_for(reads.rows(u0, graph.posts, 3), 5)
        assert len(later) == 3 and not any(b.done() for b in batch)
        gate.set()
        assert [len(await b) for b in batch] == [1, 2]
    finally:
        gate.set()
        await reads.close()
