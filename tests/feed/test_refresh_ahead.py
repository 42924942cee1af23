"""Refresh-ahead of the pulled lists kept in process: never serves a list past its lifetime, reads
every due list in one go, and leaves no task behind when the engine closes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import cast

import asyncpg

from homefeed.feed.ahead import Ahead
from homefeed.feed.feeds import PulledAuthors, RecentCache
from homefeed.feed.records import User
from homefeed.feed.services import Services
from homefeed.feed.timeline.lists import ListRead
from tests.conftest import ServicesFactory

TTL_MS = 1000


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def listed(*ids: int) -> ListRead:
    return ListRead(complete=True, ids=list(ids), ttl=-1, limit=10)


def test_a_kept_list_is_served_within_its_lifetime_only_and_marks_itself_due_past_three_quarters() -> None:
    clock = Clock()
    cache = RecentCache(TTL_MS, clock)
    cache.put(1, listed(5, 4), fetched=clock.now)
    clock.now += 0.5
    assert cache.lists([1, 2]) == [listed(5, 4), None] and not cache.due
    clock.now += 0.3
    assert cache.get(1) == listed(5, 4) and cache.due
    assert cache.to_refresh() == [1]
    clock.now += 0.2  # its whole lifetime, counted from when its read was sent
    assert cache.get(1) is None


def test_a_late_reply_never_replaces_a_newer_list_nor_outlives_a_clear() -> None:
    clock = Clock()
    cache = RecentCache(TTL_MS, clock)
    sent = clock.now
    clock.now += 0.1
    cache.put(1, listed(6, 5), fetched=clock.now)
    cache.put(1, listed(5), fetched=sent)  # a read sent earlier, answered later
    assert cache.get(1) == listed(6, 5)
    sent = clock.now
    clock.now += 0.1
    cache.clear()
    cache.put(1, listed(6, 5), fetched=sent)  # sent before the clear: as if expired
    assert cache.get(1) is None


async def test_ahead_runs_one_refresh_at_a_time_and_close_cancels_it_and_refuses_more() -> None:
    started, release = asyncio.Event(), asyncio.Event()
    runs = 0

    async def refresh() -> None:
        nonlocal runs
        runs += 1
        started.set()
        await release.wait()

    ahead = Ahead(refresh, "test refresh-ahead")
    ahead.kick()
    ahead.kick()
    await started.wait()
    assert runs == 1 and ahead.running
    await ahead.close()
    assert not ahead.running
    assert not [t for t in asyncio.all_tasks() if t.get_name() == "test refresh-ahead"]
    ahead.kick()
    await asyncio.sleep(0)
    assert runs == 1 and not ahead.running


async def user(services: Services, handle: str) -> User:
    return await services.users.create(handle, handle, "x")


async def pulled_world(services: Services, stars: int) -> tuple[User, list[User]]:
    """A viewer following `stars` pulled authors, each with one post in their recent list."""
    viewer = await user(services, "viewer")
    made = [await user(services, f"star{i}") for i in range(stars)]
    for star in made:
        await services.relations.follow(viewer.id, star.id)
        await services.feeds.after_follow_change(viewer.id, star.id)
        await services.pool.execute(
            "UPDATE users SET fanout_mode = 1, pull_from = next_id() WHERE id = $1", star.id
        )
        await services.feeds.rebuild_recent(star.id)
        await post(services, star)
    return viewer, made


async def post(services: Services, star: User) -> int:
    created = await services.posts.create(star.id, "pulled")
    await services.feeds.push_recent(star.id, created.id)
    return created.id


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def test_a_refresh_ahead_never_serves_a_list_past_its_lifetime_and_reads_all_due_lists_at_once(
    make_services: ServicesFactory,
) -> None:
    services = await make_services(celebrity_cache_ms=TTL_MS)
    feeds = services.feeds
    clock = Clock()
    feeds.recent_cache = RecentCache(TTL_MS, clock)
    viewer, stars = await pulled_world(services, 3)
    first = (await feeds.home(viewer.id, 10, None)).post_ids
    assert len(first) == 3

    # The refresh reads the lists as they are when it is sent, then stalls (a slow Redis).
    asked: list[list[int]] = []
    stalled, release = asyncio.Event(), asyncio.Event()
    real = feeds._read_recent

    async def slow(authors: Sequence[int]) -> list[ListRead]:
        asked.append(sorted(authors))
        found = await real(authors)
        if len(asked) == 1:
            stalled.set()
            await release.wait()
        return found

    feeds._read_recent = slow  # type: ignore[method-assign]
    clock.now += 0.8  # past three quarters: the kept lists are served, and refreshed behind
    assert (await feeds.home(viewer.id, 10, None)).post_ids == first
    await stalled.wait()
    assert asked == [sorted(s.id for s in stars)]  # every due list, in one read
    newer = await post(services, stars[0])  # after the refresh read the lists

    clock.now += 0.2  # their lifetime is over, the refresh still out: the reader reads them itself
    assert (await feeds.home(viewer.id, 10, None)).post_ids == [newer, *first]
    release.set()
    await settle()
    assert not feeds.recent_ahead.running
    # The stalled refresh's lists (read before `newer`) came back after the reader's: not kept.
    assert (await feeds.home(viewer.id, 10, None)).post_ids == [newer, *first]


async def test_closing_the_engine_stops_a_refresh_that_is_still_out(make_services: ServicesFactory) -> None:
    services = await make_services(celebrity_cache_ms=TTL_MS)
    feeds = services.feeds
    clock = Clock()
    feeds.recent_cache = RecentCache(TTL_MS, clock)
    viewer, _ = await pulled_world(services, 2)
    await feeds.home(viewer.id, 10, None)

    stalled = asyncio.Event()

    async def hung(authors: Sequence[int]) -> list[ListRead]:
        stalled.set()
        await asyncio.Event().wait()  # Redis never answers
        raise AssertionError("unreachable")

    feeds._read_recent = hung  # type: ignore[method-assign]
    clock.now += 0.8
    await feeds.home(viewer.id, 10, None)
    await stalled.wait()
    assert feeds.recent_ahead.running
    await services.close()
    leftover = [t for t in asyncio.all_tasks() if "refresh-ahead" in t.get_name() and not t.done()]
    assert not leftover and not feeds.recent_ahead.running
    clock.now += 0.2
    feeds.recent_cache.due = True
    feeds.recent_ahead.kick()  # a late reader of a closed engine starts nothing
    assert not feeds.recent_ahead.running


class Pool:
    """fetch() answers with the set it holds when called, once its caller lets it."""

    def __init__(self) -> None:
        self.ids = [1]
        self.gates: list[asyncio.Event] = []

    async def fetch(self, query: str) -> list[dict[str, int]]:
        answer = [{"id": i} for i in self.ids]
        gate = asyncio.Event()
        self.gates.append(gate)
        await gate.wait()
        return answer


async def test_a_background_reload_answering_after_a_readers_later_one_keeps_the_newer_set() -> None:
    pool = Pool()
    authors = PulledAuthors(cast(asyncpg.Pool, pool), TTL_MS)
    first = asyncio.create_task(authors.get())
    await settle()
    pool.gates[0].set()
    assert await first == frozenset({1})
    authors._expires = time.monotonic() + 0.1  # past three quarters: the next read reloads behind
    assert await authors.get() == frozenset({1})
    await settle()
    assert authors.ahead.running and len(pool.gates) == 2  # the refresh's statement, sent with {1}
    pool.ids = [1, 2]  # an author is pulled now
    authors.expire()  # the lists' time runs out: a reader loads again
    reader = asyncio.create_task(authors.get())
    await settle()
    pool.gates[2].set()
    assert await reader == frozenset({1, 2})
    pool.gates[1].set()  # the refresh answers last, with the set from before
    await settle()
    assert await authors.get() == frozenset({1, 2})
    await authors.close()
