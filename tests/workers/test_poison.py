"""Poison jobs and the worker's metrics: a job that always fails ends in dead_jobs, counted, never lost."""

from __future__ import annotations

import asyncio
import time

from prometheus_client import REGISTRY

from homefeed.feed.store.outbox import DELETE, POST, Job
from homefeed.workers.fanout_worker import FanoutWorker
from homefeed.workers.sampler import sample_forever, sample_once
from tests.conftest import ServicesFactory


def count(kind: str, outcome: str) -> float:
    value = REGISTRY.get_sample_value("homefeed_jobs_total", {"kind": kind, "outcome": outcome})
    return value or 0.0


def gauge(name: str) -> float:
    value = REGISTRY.get_sample_value(name)
    assert value is not None
    return value


class Poison(RuntimeError):
    pass


async def test_a_poison_job_is_buried_after_n_attempts_with_its_error(make_services: ServicesFactory) -> None:
    services = await make_services(job_max_attempts=3)
    worker = FanoutWorker(services)
    attempts: list[int] = []
    handle = worker.jobs.handle

    async def poisoned(job: Job) -> None:
        if job.kind == DELETE:
            attempts.append(job.attempts)
            raise Poison(f"cannot handle subject {job.subject_id}")
        await handle(job)

    worker.jobs.handle = poisoned  # type: ignore[method-assign]
    await services.pool.execute(
        "INSERT INTO outbox (kind, actor_id, subject_id) VALUES ($1, 7, 42), ($2, 7, 43)", DELETE, POST
    )
    before = {o: count(DELETE, o) for o in ("done", "failed", "dead")}
    done_before = count(POST, "done")
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if await services.pool.fetchval("SELECT count(*) FROM dead_jobs"):
            break
        if not await worker.run_once():
            await asyncio.sleep(0.05)
    assert attempts == [1, 2, 3]  # tried exactly N times, never again
    assert await services.pool.fetchval("SELECT count(*) FROM outbox") == 0
    dead = await services.pool.fetchrow("SELECT * FROM dead_jobs")
    assert dead is not None
    assert (dead["kind"], dead["actor_id"], dead["subject_id"], dead["attempts"]) == (DELETE, 7, 42, 3)
    assert "Poison: cannot handle subject 42" in dead["last_error"]
    assert "Traceback" in dead["last_error"]
    assert count(DELETE, "failed") - before["failed"] == 2
    assert count(DELETE, "dead") - before["dead"] == 1
    assert count(DELETE, "done") == before["done"]
    assert count(POST, "done") - done_before == 1
    await sample_once(worker.outbox)
    assert gauge("homefeed_dead_jobs") == 1
    assert gauge("homefeed_outbox_jobs") == 0


async def test_the_sampler_keeps_the_outbox_gauges_current(make_services: ServicesFactory) -> None:
    services = await make_services()
    worker = FanoutWorker(services)
    await services.pool.execute(
        """INSERT INTO outbox (kind, actor_id, subject_id, created_at)
           SELECT $1, 1, g, now() - make_interval(secs => g) FROM generate_series(1, 5) g""",
        POST,
    )
    stop = asyncio.Event()
    sampling = asyncio.create_task(sample_forever(worker.outbox, stop))
    try:
        await asyncio.sleep(0.3)
        assert gauge("homefeed_outbox_jobs") == 5
        assert 5 <= gauge("homefeed_outbox_oldest_age_seconds") < 30
        await services.pool.execute("DELETE FROM outbox")
        await asyncio.sleep(2.5)  # one sampling period
        assert gauge("homefeed_outbox_jobs") == 0
        assert gauge("homefeed_outbox_oldest_age_seconds") == 0
    finally:
        stop.set()
        await sampling


async def test_a_job_of_unknown_kind_ends_in_dead_jobs_not_dropped(make_services: ServicesFactory) -> None:
    # A row written by a newer release (or by hand): kept for someone who can run it.
    services = await make_services(job_max_attempts=1)
    worker = FanoutWorker(services)
    await services.pool.execute("INSERT INTO outbox (kind, actor_id, subject_id) VALUES ('mystery', 7, 42)")
    await worker.run_once()
    dead = await services.pool.fetchrow("SELECT kind, actor_id, subject_id, last_error FROM dead_jobs")
    assert dead is not None
    assert (dead["kind"], dead["actor_id"], dead["subject_id"]) == ("mystery", 7, 42)
    assert "unknown kind 'mystery'" in dead["last_error"]
    assert await services.pool.fetchval("SELECT count(*) FROM outbox") == 0
