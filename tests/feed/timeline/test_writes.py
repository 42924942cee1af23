"""Timeline writes by user id: appends, expiries, trims, merges, removals, rebuilds, bulk sets."""

from __future__ import annotations

from collections.abc import AsyncIterator

import numpy as np
import pytest

from homefeed.feed.services import Services
from homefeed.feed.timeline.keys import Keys
from homefeed.feed.timeline.lists import IdLists, ListQuery, ListRead
from homefeed.feed.timeline.writes import BuiltTimeline, TimelineWrites

SIZE = 4


@pytest.fixture
async def writes(services: Services) -> AsyncIterator[TimelineWrites]:
    s = services.settings
    made = TimelineWrites(
        services.redis,
        s.redis_url,
        Keys(s.redis_prefix),
        IdLists(services.redis, SIZE),
        timeline_ttl=600,
        recent_ttl=300,
    )
    yield made
    await made.close()


async def read(services: Services, key: str) -> ListRead:
    (got,) = await IdLists(services.redis, SIZE).read([ListQuery(key, None, 100)])
    return got


async def test_push_appends_to_each_users_timeline_and_trims_the_overgrown(
    services: Services, writes: TimelineWrites
) -> None:
    keys = Keys(services.settings.redis_prefix)
    await writes.rebuild(1, [1], whole_history=True)
    for post in range(2, 30):
        await writes.push([1, 2], post)
    first, second = await read(services, keys.timeline(1)), await read(services, keys.timeline(2))
    assert first.complete and first.ids[:SIZE] == [29, 28, 27, 26]
    assert len(first.ids) < 28  # trimmed on the way: it never grew past its bound plus slack
    assert not second.complete and second.ids[0] == 29  # created by an append: untrusted
    assert 0 < second.ttl <= 600


async def test_recent_lists_take_their_own_expiry_and_lose_deleted_posts(
    services: Services, writes: TimelineWrites
) -> None:
    key = Keys(services.settings.redis_prefix).recent(7)
    await writes.rebuild_recent(7, [10, 20], whole_history=True)
    await writes.push_recent(7, 30)
    await writes.remove_recent(7, [20])
    got = await read(services, key)
    assert got.ids == [30, 10, 0]
    assert 0 < got.ttl <= 300
    assert not await services.redis.exists(Keys(services.settings.redis_prefix).timeline(7))


async def test_backfill_merges_into_each_timeline_and_removal_takes_out(
    services: Services, writes: TimelineWrites
) -> None:
    keys = Keys(services.settings.redis_prefix)
    for user in (1, 2):
        await writes.rebuild(user, [5], whole_history=True)
    await writes.add([1, 2], [6, 7], more_before=False)
    assert [(await read(services, keys.timeline(u))).ids for u in (1, 2)] == [[7, 6, 5, 0]] * 2
    await writes.remove(1, [6])
    assert (await read(services, keys.timeline(1))).ids == [7, 5, 0]
    await writes.remove(3, [6])
    assert not await services.redis.exists(keys.timeline(3))


async def test_keep_alive_gives_the_full_term_again(services: Services, writes: TimelineWrites) -> None:
    key = Keys(services.settings.redis_prefix).timeline(4)
    await writes.rebuild(4, [1], whole_history=True)
    await services.redis.expire(key, 5)
    await writes.keep_alive(4)
    assert 5 < await services.redis.ttl(key) <= 600


async def test_built_timelines_are_stored_whole_in_batches(
    services: Services, writes: TimelineWrites
) -> None:
    keys = Keys(services.settings.redis_prefix)
    await services.redis.set(keys.timeline(0), b"stale")
    timelines = [
        BuiltTimeline(user, np.array([user, user + 1000], dtype=np.int64), user % 2 == 0, 100 + user)
        for user in range(1203)  # more than one pipelined batch
    ]
    await writes.write_built(timelines)
    for t in (timelines[0], timelines[1], timelines[-1]):
        got = await read(services, keys.timeline(t.user_id))
        expected = [t.user_id + 1000, t.user_id] + ([0] if t.whole_history else [])
        assert got.complete and got.ids == expected
        assert 0 < got.ttl <= t.ttl


async def test_appends_without_a_redis_url_are_refused(services: Services) -> None:
    s = services.settings
    lists = IdLists(services.redis, SIZE)
    writes = TimelineWrites(services.redis, None, Keys(s.redis_prefix), lists, timeline_ttl=60, recent_ttl=60)
    with pytest.raises(RuntimeError, match="redis_url"):
        await writes.push([1], 2)
    await writes.rebuild(1, [2], whole_history=True)  # rewrites need only the client
    assert (await read(services, Keys(s.redis_prefix).timeline(1))).ids == [2, 0]
