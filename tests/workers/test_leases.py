"""Leases under a heartbeat: a slow job is never run twice at once, a job taken over is let go,
a worker SIGKILLed while holding jobs has them back within one lease and done by another."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time

from homefeed.feed.services import Services
from homefeed.feed.store.outbox import POST, POST_CHUNK, Job
from homefeed.workers.fanout_worker import FanoutWorker
from tests.conftest import ServicesFactory
from tests.workers.test_fanout_worker import author_with_followers, missing_from


async def test_a_job_slower_than_its_lease_is_never_run_twice_at_once(make_services: ServicesFactory) -> None:
    services = await make_services(job_lease_seconds=1)
    await services.pool.execute("INSERT INTO outbox (kind, actor_id, subject_id) VALUES ($1, 1, 1)", POST)
    running = 0
    most = 0
    runs = 0

    async def slow(job: Job) -> None:
        nonlocal running, most, runs
        runs += 1
        running += 1
        most = max(most, running)
        try:
            await asyncio.sleep(3.5)  # three and a half leases
        finally:
            running -= 1

    workers = [FanoutWorker(services), FanoutWorker(await make_services(job_lease_seconds=1))]
    for w in workers:
        w.jobs.handle = slow  # type: ignore[method-assign]
    stop = asyncio.Event()
    loops = [asyncio.create_task(w.run_forever(stop)) for w in workers]
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if not await services.pool.fetchval("SELECT count(*) FROM outbox"):
                break
            await asyncio.sleep(0.1)
    finally:
        stop.set()
        await asyncio.gather(*loops)
    assert (runs, most) == (1, 1)
    assert await services.pool.fetchval("SELECT count(*) FROM outbox") == 0


async def test_a_job_taken_over_mid_run_is_cancelled_and_left_to_its_new_holder(services: Services) -> None:
    worker = FanoutWorker(services)
    await services.pool.execute("INSERT INTO outbox (kind, actor_id, subject_id) VALUES ($1, 1, 1)", POST)
    started = asyncio.Event()
    finished = False

    async def slow(job: Job) -> None:
        nonlocal finished
        started.set()
        await asyncio.sleep(10)
        finished = True

    worker.jobs.handle = slow  # type: ignore[method-assign]
    batch = asyncio.create_task(worker.run_once())
    await started.wait()
    # Another worker's claim after our lease ran out (say the event loop stalled for a lease).
    await services.pool.execute("UPDATE outbox SET leased_by = gen_random_uuid(), attempts = attempts + 1")
    t0 = time.monotonic()
    assert await asyncio.wait_for(batch, 5) == 1
    assert time.monotonic() - t0 < services.settings.job_lease_seconds
    assert not finished
    row = await services.pool.fetchrow(
        "SELECT attempts, leased_by <> $1 AS theirs FROM outbox", worker.outbox.holder
    )
    assert row is not None and row["theirs"] and row["attempts"] == 2  # neither completed nor retried by us


async def test_a_worker_sigkilled_while_holding_jobs_has_them_done_by_another_after_one_lease(
    make_services: ServicesFactory,
) -> None:
    # The default lease: what production runs with.
    services = await make_services(fanout_chunk=100)
    assert services.settings.job_lease_seconds <= 3
    settings = services.settings
    author = await author_with_followers(services, 30_000)
    post = await services.posts.create(author, "survives a crash")
    env = {
        **os.environ,
        "HOMEFEED_DATABASE_URL": settings.database_url or "",
        "HOMEFEED_REDIS_URL": settings.redis_url or "",
        "HOMEFEED_REDIS_PREFIX": settings.redis_prefix,
        "HOMEFEED_FANOUT_CHUNK": "100",
    }
    env.pop("HOMEFEED_JOB_LEASE_SECONDS", None)
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
        # Kill it while it holds leased chunks, some done and some still queued.
        deadline = time.monotonic() + 60
        held = 0
        while time.monotonic() < deadline:
            row = await services.pool.fetchrow(
                "SELECT count(*), count(*) FILTER (WHERE available_at > now()) FROM outbox WHERE kind = $1",
                POST_CHUNK,
            )
            assert row is not None
            left, held = row[0], row[1]
            if 0 < left < 250 and held:
                break
            await asyncio.sleep(0.005)
        os.kill(proc.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        await asyncio.wait_for(proc.wait(), 10)
    finally:
        if proc.returncode is None:
            proc.kill()
    assert held > 0, "the kill should land while the worker holds jobs"
    assert 0 < await missing_from(services, author, post.id) < 30_000, "the kill should land mid-fan-out"
    # The dead worker's jobs come back within one lease of the kill: no job is hidden longer.
    # Checked on the rows, not by a stopwatch, so a loaded machine cannot fail it.
    hidden_for = await services.pool.fetchval(
        "SELECT coalesce(extract(epoch FROM max(available_at) - now()), 0) FROM outbox"
    )
    assert hidden_for <= settings.job_lease_seconds, f"a job stays hidden {hidden_for:.1f} s"
    stop = asyncio.Event()
    survivor = asyncio.create_task(FanoutWorker(services).run_forever(stop))
    try:
        while time.monotonic() - killed_at < 120:
            if not await services.pool.fetchval("SELECT count(*) FROM outbox"):
                break
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await survivor
    assert not await services.pool.fetchval("SELECT count(*) FROM outbox")
    assert await missing_from(services, author, post.id) == 0
