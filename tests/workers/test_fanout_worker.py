"""The fan-out worker: chunked jobs, leases, and a worker killed mid-fan-out."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time

import pytest

from homefeed.feed.services import Services
from homefeed.feed.store.outbox import POST_CHUNK
from homefeed.feed.timeline.encoding import decode
from homefeed.feed.timeline.keys import Keys
from homefeed.workers.fanout_worker import FanoutWorker
from tests.conftest import ServicesFactory
from tests.feed.hung_redis import own_valkey, paused


async def author_with_followers(services: Services, followers: int) -> int:
    """An author followed by `followers` new, active users (bulk SQL: fast)."""
    author = await services.users.create("author", "author", "x")
    await services.pool.execute(
        """WITH fans AS (
               INSERT INTO users (handle, display_name, password_hash, following_count)
               SELECT 'fan' || g, 'fan', 'x', 1 FROM generate_series(1, $2) g RETURNING id
           ), f1 AS (
               INSERT INTO follows (follower_id, followee_id) SELECT id, $1 FROM fans
           )
           INSERT INTO followers (followee_id, follower_id) SELECT $1, id FROM fans""",
        author.id,
        followers,
    )
    await services.pool.execute("UPDATE users SET follower_count = $2 WHERE id = $1", author.id, followers)
    return author.id


async def missing_from(services: Services, author: int, post_id: int) -> int:
    """How many of the author's followers lack the post in their timeline."""
    rows = await services.pool.fetch("SELECT follower_id FROM followers WHERE followee_id = $1", author)
    keys = Keys(services.settings.redis_prefix)
    async with services.redis.pipeline(transaction=False) as pipe:
        for r in rows:
            pipe.get(keys.timeline(r["follower_id"]))
        lists = await pipe.execute()
    return sum(post_id not in decode(raw).ids for raw in lists)


async def test_big_follower_lists_are_split_into_chunks_workers_share(make_services: ServicesFactory) -> None:
    services = await make_services(fanout_chunk=100)
    author = await author_with_followers(services, 250)
    post = await services.posts.create(author, "to many")
    worker = FanoutWorker(services)
    await worker.run_once()  # the parent job splits itself
    kinds = [r["kind"] for r in await services.pool.fetch("SELECT kind FROM outbox")]
    assert kinds == [POST_CHUNK] * 3
    other = FanoutWorker(services)
    await asyncio.gather(worker.drain(), other.drain())
    assert await missing_from(services, author, post.id) == 0
    assert await worker.outbox.pending() == 0


async def test_a_worker_killed_mid_fan_out_loses_nothing(make_services: ServicesFactory) -> None:
    services = await make_services(fanout_chunk=100, job_lease_seconds=1)
    settings = services.settings
    author = await author_with_followers(services, 20_000)
    post = await services.posts.create(author, "survives a crash")
    env = {
        **os.environ,
        "HOMEFEED_DATABASE_URL": settings.database_url or "",
        "HOMEFEED_REDIS_URL": settings.redis_url or "",
        "HOMEFEED_REDIS_PREFIX": settings.redis_prefix,
        "HOMEFEED_FANOUT_CHUNK": "100",
        "HOMEFEED_JOB_LEASE_SECONDS": "1",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "homefeed.cli.main",
        "worker",
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        # Kill it once it is part-way through the chunks: some done, some still queued.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            left = await services.pool.fetchval("SELECT count(*) FROM outbox WHERE kind = $1", POST_CHUNK)
            if 0 < left < 150:
                break
            await asyncio.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
        await asyncio.wait_for(proc.wait(), 10)
    finally:
        if proc.returncode is None:
            proc.kill()
    assert 0 < await missing_from(services, author, post.id) < 20_000, "the kill should land mid-fan-out"
    # Its leases run out and another worker finishes the job.
    worker = FanoutWorker(services)
    deadline = time.monotonic() + 30
    while await worker.outbox.pending() and time.monotonic() < deadline:
        if not await worker.run_once():
            await asyncio.sleep(0.2)
    assert await worker.outbox.pending() == 0
    assert await missing_from(services, author, post.id) == 0


@pytest.mark.usefixtures("single_redis")  # a server of the test's own, paused
async def test_a_fan_out_held_by_a_paused_redis_fails_in_bounded_time_and_its_retry_delivers(
    make_services: ServicesFactory,
) -> None:
    with own_valkey() as (url, pid):
        services = await make_services(redis_url=url, redis_write_timeout_ms=1000)
        author = await author_with_followers(services, 50)
        post = await services.posts.create(author, "while Redis is paused")
        worker = FanoutWorker(services)
        with paused(pid):
            started = time.monotonic()
            async with asyncio.timeout(30):  # without a bound on the writer, run_once never returns
                assert await worker.run_once() == 1
            assert time.monotonic() - started < 5
        # Failed, not lost: the job is still in the outbox, to be retried.
        row = await services.pool.fetchrow("SELECT attempts, last_error FROM outbox")
        assert row is not None and row["attempts"] == 1 and "NoReply" in row["last_error"]
        deadline = time.monotonic() + 30
        while await worker.outbox.pending():
            assert time.monotonic() < deadline, "the failed job was not retried"
            await worker.drain()
            await asyncio.sleep(0.1)
        assert await missing_from(services, author, post.id) == 0
