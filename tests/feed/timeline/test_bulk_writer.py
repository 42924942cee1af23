"""The fan-out writer: appends in pipelined batches, expiries of created lists, errors and reconnection."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from homefeed.feed.config import Settings
from homefeed.feed.services import Services
from homefeed.feed.timeline.bulk_writer import BATCH, BulkWriter, NoReply
from homefeed.feed.timeline.cluster_writer import ClusterBulkWriter
from homefeed.feed.timeline.encoding import decode, encode_id
from homefeed.feed.timeline.keys import Keys
from homefeed.feed.timeline.lists import IdLists, ListQuery
from homefeed.feed.timeline.reads import command
from homefeed.feed.timeline.slots import SlotMap
from tests.feed.hung_redis import own_valkey, paused


async def stored(services: Services, key: bytes) -> list[int]:
    raw = await services.redis.get(key)
    assert raw is None or isinstance(raw, bytes)
    return list(decode(raw).ids.tolist())


@pytest.fixture
async def writer(settings_: Settings, on_cluster: bool) -> AsyncIterator[BulkWriter]:
    url = settings_.redis_url or ""
    made = ClusterBulkWriter(SlotMap(url)) if on_cluster else BulkWriter(url)
    yield made
    await made.close()


async def test_appends_are_idempotent_and_trimmed_back_to_the_newest(
    services: Services, writer: BulkWriter
) -> None:
    lists = IdLists(services.redis, size=5)
    key = Keys(services.settings.redis_prefix).timeline(2)
    await lists.rebuild(key, [1, 2], ttl=60, whole_history=True)
    # Out of order and repeated, as racing workers and redone jobs deliver them.
    for post in [3, 4, 9, 5, 4, 6, 7, 8, 10, 11, 11, 12, 13, 14, 15]:
        appended = await writer.append([key.encode()], encode_id(post), ttl=60, max_bytes=lists.max_bytes)
        for overgrown in appended.overgrown:
            await lists.trim(overgrown.decode())
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


async def test_appends_create_missing_lists_untrusted_and_expiring(
    services: Services, writer: BulkWriter
) -> None:
    key = Keys(services.settings.redis_prefix).timeline(3)
    await writer.append([key.encode()], encode_id(42), ttl=60, max_bytes=10_000)
    (read,) = await IdLists(services.redis, 5).read([ListQuery(key, None, 5)])
    # A write that beat the rebuild: kept (a rebuild merges it), but not trusted as a timeline.
    assert not read.complete and read.ids == [42]
    assert 0 < read.ttl <= 60
    await IdLists(services.redis, 5).rebuild(key, [7], ttl=60, whole_history=True)
    (built,) = await IdLists(services.redis, 5).read([ListQuery(key, None, 5)])
    assert built.complete and built.ids == [42, 7, 0]


async def test_many_batches_reach_every_key_and_report_the_overgrown(
    services: Services, writer: BulkWriter
) -> None:
    keys = Keys(services.settings.redis_prefix).timelines(range(2 * BATCH + 17))
    await services.redis.set(keys[5], encode_id(1) * 3, ex=600)  # already three entries long
    appended = await writer.append(keys, encode_id(99), ttl=120, max_bytes=3 * 7)
    assert appended.written == len(keys)
    assert appended.overgrown == [keys[5]]
    async with services.redis.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.get(key)
            pipe.ttl(key)
        replies = await pipe.execute()
    values, ttls = replies[::2], replies[1::2]
    assert all(decode(v).ids.tolist()[-1] == 99 for v in values)
    # Only the lists this append created got its expiry; the existing one kept its own.
    assert ttls[5] > 120
    assert all(0 < t <= 120 for i, t in enumerate(ttls) if i != 5)


async def test_an_error_reply_is_raised_after_the_rest_are_written(
    services: Services, writer: BulkWriter
) -> None:
    keys = Keys(services.settings.redis_prefix).timelines([1, 2, 3])
    await services.redis.rpush(keys[1], b"not a string")
    with pytest.raises(ResponseError, match="WRONGTYPE"):
        await writer.append(keys, encode_id(5), ttl=60, max_bytes=10_000)
    assert await services.redis.get(keys[0]) == encode_id(5)
    assert await services.redis.get(keys[2]) == encode_id(5)
    # The connection is still in step: the next append reads its own replies.
    appended = await writer.append([keys[0]], encode_id(6), ttl=60, max_bytes=10_000)
    assert appended.written == 1
    assert await stored(services, keys[0]) == [5, 6]


async def test_a_closed_connection_is_reopened_by_the_next_append(
    services: Services, writer: BulkWriter
) -> None:
    key = Keys(services.settings.redis_prefix).timeline(9)
    await writer.append([key.encode()], encode_id(1), ttl=60, max_bytes=10_000)
    await writer.close()
    await writer.append([key.encode()], encode_id(2), ttl=60, max_bytes=10_000)
    assert await stored(services, key.encode()) == [1, 2]


async def test_an_append_cancelled_mid_pipeline_leaves_no_reply_for_the_next_call(
    services: Services, writer: BulkWriter
) -> None:
    # A job whose lease passes to another worker is cancelled wherever it is, here mid-pipeline.
    keys = Keys(services.settings.redis_prefix)
    many = keys.timelines(range(1, 20 * BATCH))
    probe = keys.timeline(0).encode()
    await writer.append([probe] * 3, encode_id(1), ttl=60, max_bytes=10_000)
    cut = asyncio.create_task(writer.append(many, encode_id(2), ttl=60, max_bytes=10_000))
    for _ in range(100_000):  # until Redis has applied the start of its first batch
        if await services.redis.exists(many[0]):
            break
        await asyncio.sleep(0.001)
    assert not cut.done(), "the append finished before it could be cut: give it more keys"
    cut.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await cut
    # The next call's reply is its own: the probe's fourth entry, not a leftover of the cut one.
    assert await writer._send_each([probe], [b"APPEND"], [encode_id(3)]) == [4 * len(encode_id(1))]


async def test_a_paused_server_fails_appends_and_commands_in_bounded_time_and_the_retry_lands() -> None:
    # A Valkey of the test's own, SIGSTOPped: connections are accepted, nothing is answered.
    with own_valkey() as (url, pid):
        writer = BulkWriter(url, timeout=0.5)
        check = Redis.from_url(url)
        try:
            keys = [b"t:%d" % i for i in range(3 * BATCH)]  # a few batches, so some wait unread
            await writer.append(keys, encode_id(1), ttl=60, max_bytes=10_000)
            barrier = command([b"SET", b"barrier", b"1"]) + command([b"INCR", b"barriers"])
            calls: list[Callable[[], Awaitable[object]]] = [
                lambda: writer.append(keys, encode_id(2), ttl=60, max_bytes=10_000),
                lambda: writer.commands(barrier, 2),
            ]
            with paused(pid):
                for call in calls:
                    started = time.monotonic()
                    with pytest.raises(NoReply):
                        async with asyncio.timeout(10):  # without a bound, the call waits forever
                            await call()
                    # One wait, not one per batch, nor a second on a fresh connection.
                    assert time.monotonic() - started < 2.0
            # The job redone once Redis is back: its writes land, a repeat is deduplicated.
            await writer.append(keys, encode_id(2), ttl=60, max_bytes=10_000)
            for raw in await check.mget(keys):
                assert isinstance(raw, bytes) and set(decode(raw).ids.tolist()) == {1, 2}
            replies = await writer.commands(barrier, 2)
            assert replies[0] == 0 and isinstance(replies[1], int) and replies[1] >= 1
        finally:
            await writer.close()
            await check.aclose()
