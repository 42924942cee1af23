"""Recovery after Redis is flushed: cold rebuilds are bounded per process, and nothing is lost meanwhile."""

from __future__ import annotations

import asyncio

from prometheus_client import REGISTRY

from homefeed.feed.services import Services
from homefeed.workers.fanout_worker import FanoutWorker
from tests.conftest import ServicesFactory, delete_prefix


async def flush(services: Services) -> None:
    """A flush of this test's keys only (the server may be shared with other test runs)."""
    await delete_prefix(services.redis, services.settings.redis_prefix)


def sample(name: str, labels: dict[str, str] | None = None) -> float:
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


async def _world(services: Services, readers: int) -> tuple[list[int], int]:
    star = (await services.users.create("star", "star", "x")).id
    ids = [(await services.users.create(f"r{i}", f"r{i}", "x")).id for i in range(readers)]
    for r in ids:
        await services.relations.follow(r, star)
    for i in range(5):
        await services.posts.create(star, f"p{i}")
    await FanoutWorker(services).drain()
    return ids, star


async def test_after_a_flush_readers_beyond_the_limit_are_answered_without_rebuilding(
    make_services: ServicesFactory,
) -> None:
    limit, readers = 3, 24
    services = await make_services(cold_rebuild_limit=limit)
    feeds = services.feeds
    ids, _ = await _world(services, readers)
    expected = {r: (await feeds.pull_page(r, 10, None)).post_ids for r in ids}
    for r in ids:
        await feeds.home(r, 10, None)
    await flush(services)

    running = peak = rebuilt = 0
    original = feeds.rebuild_timeline

    async def slow(user_id: int) -> None:
        nonlocal running, peak, rebuilt
        running += 1
        peak = max(peak, running)
        try:
            await asyncio.sleep(0.2)  # a slow PostgreSQL: every reader arrives meanwhile
            await original(user_id)
            rebuilt += 1
        finally:
            running -= 1

    feeds.rebuild_timeline = slow  # type: ignore[method-assign]
    limited = sample("homefeed_pull_fallback_reads_total", {"reason": "rebuild_limit"})
    rebuilds = sample("homefeed_cold_rebuilds_total")
    pages = await asyncio.gather(*(feeds.home(r, 10, None) for r in ids))
    assert [p.post_ids for p in pages] == [expected[r] for r in ids]  # nothing lost, none short
    # A reader arriving after a rebuild finished may take its place: never more than the limit at once.
    assert peak == limit and limit <= rebuilt < readers
    assert feeds.rebuilding == 0
    now_limited = sample("homefeed_pull_fallback_reads_total", {"reason": "rebuild_limit"})
    assert now_limited == limited + readers - rebuilt
    assert sample("homefeed_cold_rebuilds_total") == rebuilds + rebuilt

    # Later reads rebuild the rest, a few at a time, and then read their timelines.
    for _ in range(readers):
        await asyncio.gather(*(feeds.home(r, 10, None) for r in ids))
        if rebuilt == readers:
            break
    assert rebuilt == readers
    assert [(await feeds.home(r, 10, None)).post_ids for r in ids] == [expected[r] for r in ids]


async def test_a_failed_rebuild_frees_its_place(make_services: ServicesFactory) -> None:
    services = await make_services(cold_rebuild_limit=1)
    feeds = services.feeds
    ids, _ = await _world(services, 2)
    await flush(services)
    original = feeds.rebuild_timeline

    async def failing(user_id: int) -> None:
        raise ConnectionResetError("PostgreSQL went away mid-rebuild")

    feeds.rebuild_timeline = failing  # type: ignore[method-assign]
    expected = (await feeds.pull_page(ids[0], 10, None)).post_ids
    assert (await feeds.home(ids[0], 10, None)).post_ids == expected  # answered by the fallback
    assert feeds.rebuilding == 0
    feeds.rebuild_timeline = original  # type: ignore[method-assign]
    await feeds.home(ids[0], 10, None)  # rebuilds: the place was given back
    assert await services.redis.exists(f"{services.settings.redis_prefix}:{{{ids[0]}}}:tl")
