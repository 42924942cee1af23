"""Read your own writes: an author's post is in their home feed and live stream once createPost answers.

No fan-out worker runs in these tests unless one is drained explicitly: without the
author's own append, every assertion on the next read would fail.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import math
from collections.abc import Awaitable, Callable

from hypothesis import given
from hypothesis import strategies as st
from redis.exceptions import ConnectionError as RedisConnectionError

from homefeed.feed.ids import id_ms
from homefeed.feed.live import Kind
from homefeed.feed.services import Services
from homefeed.workers.fanout_worker import FanoutWorker
from tests.api import Api
from tests.conftest import ServicesFactory

_handles = itertools.count()


async def _break_appends(services: Services) -> None:
    """The author's own append fails (Redis error on that one command); reads still work."""
    reads = services.feeds.reads
    assert reads is not None
    original = reads.call

    async def failing(*args: bytes) -> object:
        if args[0] == b"APPEND":
            raise RedisConnectionError("injected: the append did not reach Redis")
        return await original(*args)

    reads.call = failing  # type: ignore[method-assign]


async def test_the_author_sees_their_post_on_the_next_read_through_the_api(
    make_services: ServicesFactory,
) -> None:
    services = await make_services(inprocess_worker=False)
    async with Api.running(services) as api:
        alice, bob = await api.sign_up("alice"), await api.sign_up("bob")
        assert (await api.act(alice, "follow", bob)).ok()
        await api.post(bob, "from bob")
        await FanoutWorker(services).drain()
        assert len((await api.feed(alice)).ok()["homeFeed"]["edges"]) == 1  # built timeline
        for i in range(3):
            post_id = await api.post(alice, f"mine {i}")
            nodes = (await api.feed(alice)).ok()["homeFeed"]["nodes"]
            assert nodes[0]["id"] == post_id, f"post {i} missing from its author's next read"
            assert len(nodes) == i + 2
        # Fan-out later appends the same ids: nothing shows twice.
        await FanoutWorker(services).drain()
        assert len((await api.feed(alice)).ok()["homeFeed"]["nodes"]) == 4


async def test_a_pulled_author_sees_their_post_on_the_next_read(make_services: ServicesFactory) -> None:
    services = await make_services(inprocess_worker=False, celebrity_threshold=0)
    async with Api.running(services) as api:
        star, fan = await api.sign_up("star"), await api.sign_up("fan")
        assert (await api.act(fan, "follow", star)).ok()
        await api.post(star, "first")
        await FanoutWorker(services).drain()  # star is pulled now
        await api.feed(star)
        post_id = await api.post(star, "second")
        assert (await api.feed(star)).ok()["homeFeed"]["nodes"][0]["id"] == post_id


async def test_a_failed_append_still_shows_the_post_on_the_next_read(make_services: ServicesFactory) -> None:
    services = await make_services(inprocess_worker=False, celebrity_threshold=math.inf)
    feeds = services.feeds
    alice = (await services.users.create("alice", "alice", "x")).id
    bob = (await services.users.create("bob", "bob", "x")).id
    await services.relations.follow(alice, bob)
    older = await services.posts.create(bob, "old")
    await FanoutWorker(services).drain()
    assert (await feeds.home(alice, 10, None)).post_ids == [older.id]
    await _break_appends(services)
    mine = await services.posts.create(alice, "mine")
    assert not await feeds.own_post(alice, mine.id)
    # Redis is fine for reads and the timeline is built, but it lacks the post: the process
    # remembers it and merges it in.
    assert (await feeds.home(alice, 10, None)).post_ids == [mine.id, older.id]
    assert (await feeds.home(alice, 1, None)).has_next
    assert (await feeds.home(alice, 10, mine.id)).post_ids == [older.id]
    # Deleted meanwhile: remembered or not, it is gone.
    gone = await services.posts.create(alice, "regret")
    assert not await feeds.own_post(alice, gone.id)
    await services.posts.delete(alice, gone.id)
    assert (await feeds.home(alice, 10, None)).post_ids == [mine.id, older.id]
    # Once fan-out has written it, the timeline vouches for it and the memory lets it go (a
    # deleted one, never fanned out, waits for its expiry: reads drop it meanwhile).
    await FanoutWorker(services).drain()
    assert (await feeds.home(alice, 10, None)).post_ids == [mine.id, older.id]
    assert feeds._unsynced[alice][0] == [gone.id]


@given(st.lists(st.tuples(st.booleans(), st.booleans()), min_size=1, max_size=8))
async def test_every_next_read_shows_the_authors_post_whatever_fails(
    services: Services, steps: list[tuple[bool, bool]]
) -> None:
    """Posts by a viewer and a followee, own appends failing at random, fan-out run or not."""
    feeds = services.feeds
    suffix = next(_handles)
    me = (await services.users.create(f"me{suffix}", "me", "x")).id
    them = (await services.users.create(f"th{suffix}", "them", "x")).id
    await services.relations.follow(me, them)
    await feeds.home(me, 5, None)  # builds the timeline
    reads = feeds.reads
    assert reads is not None
    working = reads.call
    await _break_appends(services)
    failing = reads.call
    try:
        await _steps(services, me, them, steps, working, failing)
    finally:
        reads.call = working  # type: ignore[method-assign]


async def _steps(
    services: Services,
    me: int,
    them: int,
    steps: list[tuple[bool, bool]],
    working: Callable[..., Awaitable[object]],
    failing: Callable[..., Awaitable[object]],
) -> None:
    feeds = services.feeds
    reads = feeds.reads
    assert reads is not None
    for append_fails, drain in steps:
        reads.call = failing if append_fails else working  # type: ignore[method-assign,assignment]
        await services.posts.create(them, "theirs")
        post = await services.posts.create(me, "mine")
        await feeds.own_post(me, post.id)
        if drain:
            await FanoutWorker(services).drain()
        page = await feeds.home(me, 5, None)
        # Newest first, to the millisecond: the followee's post made just before it may share
        # its millisecond and sort either way (a post id's low bits are a wrapping sequence
        # and the author's shard), but nothing older may be above it.
        assert post.id in page.post_ids, (post.id, page.post_ids)
        above = page.post_ids[: page.post_ids.index(post.id)]
        assert all(id_ms(other) == id_ms(post.id) for other in above), (post.id, above)
        if drain:
            assert page.post_ids == (await feeds.pull_page(me, 5, None)).post_ids


async def test_the_authors_own_subscription_gets_the_post_before_fan_out(
    make_services: ServicesFactory,
) -> None:
    services = await make_services(inprocess_worker=False)
    async with Api.running(services) as api:
        alice = await api.sign_up("alice")
        async with services.live.subscribe(_raw(alice.id)) as sub:
            post_id = await api.post(alice, "live")
            event = await asyncio.wait_for(sub.next(), 5)
        assert event.kind is Kind.ADDED and event.post_id == _raw(post_id)


def _raw(global_id: str) -> int:
    """The number in a Relay global id ("Type:123", base64)."""
    return int(base64.b64decode(global_id).decode().split(":")[1])
