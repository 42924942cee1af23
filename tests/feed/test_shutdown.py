"""Closing the engine while Redis is paused and reads are still in flight: it ends, nothing lost."""

from __future__ import annotations

import asyncio
import logging
import random

import asyncpg
import pytest
from redis.asyncio import Redis

from homefeed.feed.config import Settings
from homefeed.feed.services import Services, build_services
from homefeed.feed.store.pool import create_pool
from homefeed.workers.fanout_worker import FanoutWorker
from tests.conftest import FAST_PASSWORDS
from tests.feed.hung_redis import own_valkey, paused

# Not a bound on speed: the unfixed engine never returned, and a test must end.
HANG = 60


async def _engine(settings: Settings, redis_url: str) -> Services:
    changed = settings.with_(redis_url=redis_url, redis_read_timeout_ms=200, redis_write_timeout_ms=1000)
    assert changed.database_url
    pool = await create_pool(changed.database_url)
    # The client as production opens it (services.open_services): a 5 s socket timeout.
    redis = Redis.from_url(redis_url, socket_timeout=5, socket_connect_timeout=2)
    return build_services(changed, pool, redis, passwords=FAST_PASSWORDS)


async def _world(services: Services) -> list[int]:
    ids = [(await services.users.create(f"u{i}", f"u{i}", "x")).id for i in range(6)]
    rng = random.Random(3)
    for u in ids:
        for f in rng.sample([x for x in ids if x != u], 3):
            await services.relations.follow(u, f)
    for i in range(30):
        await services.posts.create(rng.choice(ids), f"post {i}")
    await FanoutWorker(services).drain()
    return ids


@pytest.mark.usefixtures("single_redis")  # a Valkey of the test's own, paused
async def _done_by_another_process(settings: Settings, redis_url: str, post: int, viewers: list[int]) -> None:
    """Another engine drains the outbox (retry delays and expired leases included); the post then
    reaches its followers' home feeds."""
    again = await _engine(settings, redis_url)
    try:
        async with asyncio.timeout(HANG):
            while await again.pool.fetchval("SELECT count(*) FROM outbox"):
                await FanoutWorker(again).drain()
                await asyncio.sleep(0.1)
        followers = [v for v in viewers if post in (await again.feeds.pull_page(v, 10, None)).post_ids]
        assert followers
        for v in followers:
            assert post in (await again.feeds.home(v, 10, None)).post_ids
    finally:
        await again.close()


async def test_close_with_reads_in_flight_on_a_paused_redis_answers_them_and_ends(
    settings_: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """Reads in flight when closing starts (as uvicorn leaves requests running past its grace
    period) are answered, and their connections go back, so the pool closes without being
    terminated. Before, a connection a read gave back after the read lanes had closed stayed in
    the lanes, and Pool.close waited for it forever.

    Redis is paused, so the reads fall back to PostgreSQL; a lock on posts holds them there,
    each on a connection, while closing starts."""
    assert settings_.database_url
    with own_valkey() as (url, pid):
        services = await _engine(settings_, url)
        closing: asyncio.Task[None] | None = None
        try:
            viewers = await _world(services)
            feeds = services.feeds
            expected = {v: (await feeds.pull_page(v, 10, None)).post_ids for v in viewers}
            for v in viewers:  # warm: timelines built, the read lanes hold their connections
                assert (await feeds.home(v, 10, None)).post_ids == expected[v]
            locker = await asyncpg.connect(settings_.database_url)
            try:
                with paused(pid), caplog.at_level(logging.WARNING, logger="homefeed.feed.store.pool"):
                    locking = locker.transaction()
                    await locking.start()
                    await locker.execute("LOCK TABLE posts IN ACCESS EXCLUSIVE MODE")
                    reads = [asyncio.ensure_future(feeds.home(v, 10, None)) for v in viewers * 4]
                    await asyncio.sleep(0.6)  # past the Redis deadline: waiting on PostgreSQL
                    assert not any(r.done() for r in reads)
                    closing = asyncio.ensure_future(services.close())
                    await asyncio.sleep(0.2)
                    assert not closing.done()  # it waits for the reads' connections
                    await locking.commit()
                    async with asyncio.timeout(HANG):
                        pages = await asyncio.gather(*reads)
                        await closing
            finally:
                await locker.close()
            assert [p.post_ids for p in pages] == [expected[v] for v in viewers * 4]
            assert not [r for r in caplog.records if "terminated" in r.getMessage()]
        finally:
            if closing is None:
                await services.close()


@pytest.mark.usefixtures("single_redis")
async def test_a_fan_out_job_under_way_at_shutdown_on_a_paused_redis_stays_in_the_outbox(
    settings_: Settings,
) -> None:
    """The worker stops within its write deadline; the post's job is not lost, and is done once
    Redis answers again."""
    with own_valkey() as (url, pid):
        services = await _engine(settings_, url)
        try:
            viewers = await _world(services)
            with paused(pid):
                post = await services.posts.create(viewers[0], "during shutdown")
                stop = asyncio.Event()
                worker = asyncio.ensure_future(FanoutWorker(services).run_forever(stop))
                await asyncio.sleep(0.3)  # it claims the job and writes to the paused Redis
                stop.set()
                async with asyncio.timeout(HANG):
                    await worker
                    await services.close()
        finally:
            if not services.pool.is_closing():
                await services.close()
        assert settings_.database_url
        conn = await asyncpg.connect(settings_.database_url)
        try:
            assert await conn.fetchval("SELECT count(*) FROM outbox") >= 1
        finally:
            await conn.close()
        # Another process after the restart: the job is done (after its retry delay), the post
        # reaches a follower.
        await _done_by_another_process(settings_, url, post.id, viewers)


@pytest.mark.usefixtures("single_redis")
async def test_a_connection_never_given_back_is_terminated_at_the_deadline(settings_: Settings) -> None:
    """Whatever still holds a connection, closing ends: after the deadline the pool is terminated."""
    assert settings_.database_url and settings_.redis_url
    services = await _engine(settings_, settings_.redis_url)
    held = await services.pool.acquire()
    backend = await held.fetchval("SELECT pg_backend_pid()")
    async with asyncio.timeout(HANG):
        await services.close(pool_deadline=0.2)
    conn = await asyncpg.connect(settings_.database_url)
    try:
        gone = "SELECT NOT EXISTS (SELECT FROM pg_stat_activity WHERE pid = $1)"
        for _ in range(HANG * 20):  # the server notices the closed socket at once
            if await conn.fetchval(gone, backend):
                break
            await asyncio.sleep(0.05)
        else:
            pytest.fail("the held connection's backend is still there")
    finally:
        await conn.close()


async def _waiting_on_lock(conn: asyncpg.Connection, table: str) -> bool:
    waiting = "SELECT EXISTS (SELECT FROM pg_locks WHERE relation = $1::regclass AND NOT granted)"
    return bool(await conn.fetchval(waiting, table))


@pytest.mark.usefixtures("single_redis")
async def test_a_fan_out_job_stuck_on_a_lock_at_shutdown_is_abandoned_after_the_grace_and_redone(
    settings_: Settings,
) -> None:
    """A job whose read waits on a lock nobody releases: the stopping worker gives up its batch
    after the grace period, and returns while the lock is still held (before, it waited for the
    batch however long it took, so shutdown had no bound). The job stays in the outbox and another
    worker does it once the lock is gone: the post reaches its author's followers."""
    assert settings_.database_url and settings_.redis_url
    services = await _engine(settings_, settings_.redis_url)
    try:
        viewers = await _world(services)
        post = await services.posts.create(viewers[0], "during shutdown")
        locker = await asyncpg.connect(settings_.database_url)
        try:
            locking = locker.transaction()
            await locking.start()
            await locker.execute("LOCK TABLE posts IN ACCESS EXCLUSIVE MODE")
            stop = asyncio.Event()
            worker = asyncio.ensure_future(FanoutWorker(services).run_forever(stop, grace=0.5))
            for _ in range(HANG * 20):
                if await _waiting_on_lock(locker, "posts"):  # the job's read is stuck
                    break
                await asyncio.sleep(0.05)
            else:
                pytest.fail("the worker never read the locked table")
            stop.set()
            async with asyncio.timeout(HANG):
                await worker
            # The lock is still held: the worker returned while its job could not have finished.
            leftover = await locker.fetchval("SELECT count(*) FROM outbox WHERE subject_id = $1", post.id)
            assert leftover == 1
            await locking.commit()
        finally:
            await locker.close()
    finally:
        await services.close()
    # The abandoned lease runs out, then the job is claimed again.
    await _done_by_another_process(settings_, settings_.redis_url, post.id, viewers)
