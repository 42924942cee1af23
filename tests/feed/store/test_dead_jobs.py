"""homefeed.feed.store.dead_jobs: listing, retrying and dropping dead jobs; a job is always in exactly
one of the outbox and the dead-letter table, however retries and drops race."""

from __future__ import annotations

import asyncio

from homefeed.feed.services import Services
from homefeed.feed.store.dead_jobs import DeadJobs
from homefeed.feed.store.outbox import POST, Outbox


async def bury_all(services: Services, n: int) -> list[int]:
    outbox = Outbox(services.pool, lease_seconds=30)
    for subject in range(n):
        await outbox.enqueue(POST, 7, subject)
    jobs = await outbox.claim(n)
    for job in jobs:
        assert await outbox.bury(job, f"boom {job.subject_id}")
    return sorted(j.id for j in jobs)


async def where_is(services: Services, job_id: int) -> tuple[int, int]:
    row = await services.pool.fetchrow(
        """SELECT (SELECT count(*) FROM outbox WHERE id = $1) AS queued,
                  (SELECT count(*) FROM dead_jobs WHERE id = $1) AS dead""",
        job_id,
    )
    assert row is not None
    return row["queued"], row["dead"]


async def test_all_lists_every_dead_job_with_its_error(services: Services) -> None:
    ids = await bury_all(services, 3)
    dead = await DeadJobs(services.pool).all()
    assert [d.id for d in dead] == ids
    assert [d.last_error for d in dead] == ["boom 0", "boom 1", "boom 2"]
    assert all(d.kind == POST and d.actor_id == 7 and d.attempts == 1 for d in dead)


async def test_retry_and_drop_move_only_the_named_jobs(services: Services) -> None:
    first, second, third = await bury_all(services, 3)
    jobs = DeadJobs(services.pool)
    assert await jobs.retry([first, 10**15]) == [first]  # an unknown id is simply not moved
    assert await where_is(services, first) == (1, 0)
    assert await services.pool.fetchval("SELECT attempts FROM outbox WHERE id = $1", first) == 0
    assert await jobs.drop([second]) == [second]
    assert await where_is(services, second) == (0, 0)
    assert await where_is(services, third) == (0, 1)
    assert await jobs.retry(None) == [third]
    assert await jobs.all() == []


async def test_racing_retries_and_drops_leave_each_job_in_exactly_one_place(services: Services) -> None:
    ids = await bury_all(services, 20)
    jobs = DeadJobs(services.pool)
    results = await asyncio.gather(
        *(jobs.retry(ids) for _ in range(3)), *(jobs.drop(ids[::2]) for _ in range(3))
    )
    retried = [i for r in results[:3] for i in r]
    dropped = [i for r in results[3:] for i in r]
    assert len(retried) == len(set(retried)) and len(dropped) == len(set(dropped))  # never twice
    assert not set(retried) & set(dropped)
    for job_id in ids:
        queued, dead = await where_is(services, job_id)
        assert (queued, dead) == ((1, 0) if job_id in retried else (0, 0)), job_id
