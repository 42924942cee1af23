"""Bounded id lists in Redis: reads, rebuilds, merges and removals, each on one key."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from redis import Redis as SyncRedis
from redis.cluster import RedisCluster as SyncRedisCluster

from homefeed.feed.metrics import LIST_REWRITE_GIVEUPS
from homefeed.feed.redis_client import is_cluster
from homefeed.feed.services import Services
from homefeed.feed.timeline import lists as lists_module
from homefeed.feed.timeline.encoding import Blob, bounded, built, encode_id
from homefeed.feed.timeline.keys import Keys
from homefeed.feed.timeline.lists import IdLists, ListQuery, below


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


async def test_rewrites_racing_appends_lose_none_of_them(services: Services) -> None:
    lists = IdLists(services.redis, size=1000)
    key = Keys(services.settings.redis_prefix).timeline(5)
    await lists.rebuild(key, [1], ttl=60, whole_history=True)

    async def appends() -> None:
        for post in range(100, 300):
            await services.redis.append(key, encode_id(post))

    async def rewrites() -> None:
        for post in range(2, 40):
            await lists.add(key, [post], ttl=60, more_before=False)

    await asyncio.gather(appends(), rewrites())
    (read,) = await lists.read([ListQuery(key, None, 1000)])
    assert read.ids == [*range(299, 99, -1), *range(39, 0, -1), 0]


async def test_trim_and_remove_leave_a_missing_list_missing_and_expire_extends(services: Services) -> None:
    lists = IdLists(services.redis, size=3)
    key = Keys(services.settings.redis_prefix).timeline(6)
    await lists.trim(key)
    await lists.remove(key, [1])
    assert not await services.redis.exists(key)
    await lists.rebuild(key, [1, 2], ttl=30, whole_history=True)
    await lists.expire(key, 600)
    assert 30 < await services.redis.ttl(key) <= 600


def _blocking_client(services: Services) -> SyncRedis | SyncRedisCluster:
    """A second, blocking client: it writes from inside a rewrite's (synchronous) change."""
    url = services.settings.redis_url
    assert url is not None
    return SyncRedisCluster.from_url(url) if is_cluster(services.redis) else SyncRedis.from_url(url)


async def test_a_rewrite_that_keeps_losing_the_race_drops_the_list_instead_of_spinning(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    lists = IdLists(services.redis, size=10)
    key = Keys(services.settings.redis_prefix).timeline(7)
    await lists.rebuild(key, [1, 2], ttl=60, whole_history=True)
    monkeypatch.setattr(lists_module, "_BACKOFF_CAP", 0.0)
    touched = 0
    other = _blocking_client(services)

    def contended(old: Blob) -> Blob:
        # Another writer changes the key between every WATCH and its EXEC.
        nonlocal touched
        touched += 1
        other.append(key, encode_id(100 + touched))
        return old

    before = LIST_REWRITE_GIVEUPS._value.get()
    await lists._rewrite(key, contended)
    other.close()
    assert touched == lists_module.REWRITE_ATTEMPTS
    assert not await services.redis.exists(key)  # dropped: the next read rebuilds it from PostgreSQL
    assert LIST_REWRITE_GIVEUPS._value.get() == before + 1


async def test_a_rewrite_that_loses_a_few_races_still_lands(services: Services) -> None:
    lists = IdLists(services.redis, size=10)
    key = Keys(services.settings.redis_prefix).timeline(8)
    await lists.rebuild(key, [1], ttl=60, whole_history=True)
    other = _blocking_client(services)
    raced = 0

    def contended(old: Blob) -> Blob:
        nonlocal raced
        if raced < 3:
            raced += 1
            other.append(key, encode_id(50 + raced))
        return bounded(old.with_ids(np.union1d(old.ids, [9])), 10)

    await lists._rewrite(key, contended)
    other.close()
    (read,) = await lists.read([ListQuery(key, None, 10)])
    assert read.ids == [53, 52, 51, 9, 1, 0]  # every racing append kept, and the rewrite applied
