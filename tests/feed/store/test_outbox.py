"""homefeed.feed.store.outbox: leased claims with SKIP LOCKED, retries, completion, chunked splits.

Every claimer here that stands for another worker process gets its own connection pool.
The property that matters: every job is eventually claimed, and while a lease holds no
two claimers hold the same job.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
import pytest

from homefeed.feed.config import Settings
from homefeed.feed.services import Services
from homefeed.feed.store.outbox import DELETE, POST, POST_CHUNK, Chunk, Job, Outbox
from homefeed.feed.store.pool import create_pool

PoolFactory = Callable[[], Awaitable[asyncpg.Pool]]


@pytest.fixture
async def new_pool(settings_: Settings) -> AsyncIterator[PoolFactory]:
    """Opens pools over this test's schema (one per simulated worker process)."""
    opened: list[asyncpg.Pool] = []

    async def make() -> asyncpg.Pool:
        assert settings_.database_url
        pool = await create_pool(settings_.database_url, min_size=1, max_size=4)
        opened.append(pool)
        return pool

    yield make
    for pool in opened:
        await pool.close()


async def enqueue_many(outbox: Outbox, n: int, kind: str = POST, actor: int = 1) -> list[int]:
    """Enqueue n jobs, return their ids in order."""
    for subject in range(n):
        await outbox.enqueue(kind, actor, subject)
    return await all_ids(outbox)


async def all_ids(outbox: Outbox) -> list[int]:
    rows = await outbox._pool.fetch("SELECT id FROM outbox ORDER BY id")
    return [r["id"] for r in rows]


async def test_claim_takes_the_oldest_first_up_to_the_limit(services: Services) -> None:
    outbox = Outbox(services.pool)
    ids = await enqueue_many(outbox, 5)
    first = await outbox.claim(2)
    assert [j.id for j in first] == ids[:2]
    assert all(j.attempts == 1 and j.kind == POST and j.actor_id == 1 for j in first)
    assert [j.subject_id for j in first] == [0, 1]
    assert all(j.range_lo is None and j.range_hi is None for j in first)
    rest = await outbox.claim(10)
    assert [j.id for j in rest] == ids[2:]
    assert await outbox.claim(10) == []
    assert await outbox.pending() == 5  # leased jobs are still pending until completed


async def test_a_leased_job_is_invisible_until_its_lease_runs_out(services: Services) -> None:
    outbox = Outbox(services.pool, lease_seconds=0.5)
    (job_id,) = await enqueue_many(outbox, 1)
    (claimed,) = await outbox.claim(10)
    assert claimed.id == job_id
    assert await outbox.claim(10) == []
    await asyncio.sleep(0.7)
    (again,) = await outbox.claim(10)
    assert again.id == job_id and again.attempts == 2


async def test_a_claimer_that_never_completes_loses_nothing(new_pool: PoolFactory) -> None:
    # Worker A claims everything and dies; worker B gets every job once A's leases run out.
    dying = Outbox(await new_pool(), lease_seconds=0.5)
    ids = await enqueue_many(dying, 20)
    assert [j.id for j in await dying.claim(100)] == ids
    survivor = Outbox(await new_pool(), lease_seconds=30)
    assert await survivor.claim(100) == []
    await asyncio.sleep(0.7)
    reclaimed = await survivor.claim(100)
    assert [j.id for j in reclaimed] == ids
    assert all(j.attempts == 2 for j in reclaimed)
    await survivor.complete([j.id for j in reclaimed])
    assert await survivor.pending() == 0


async def test_an_integer_lease_as_settings_give_it(services: Services) -> None:
    # The worker passes settings.job_lease_seconds, an int.
    outbox = Outbox(services.pool, services.settings.job_lease_seconds)
    await enqueue_many(outbox, 1)
    assert len(await outbox.claim(1)) == 1
    held = await services.pool.fetchval("SELECT available_at - now() FROM outbox")
    assert abs(held.total_seconds() - services.settings.job_lease_seconds) < 5


async def test_concurrent_claimers_never_share_a_job_and_lose_none(new_pool: PoolFactory) -> None:
    workers = [Outbox(await new_pool(), lease_seconds=60) for _ in range(6)]
    ids = await enqueue_many(workers[0], 300)
    claimed: list[list[int]] = [[] for _ in workers]

    async def work(i: int) -> None:
        while jobs := await workers[i].claim(7):
            claimed[i].extend(j.id for j in jobs)
            await asyncio.sleep(0)  # let the others in between claims

    await asyncio.gather(*(work(i) for i in range(len(workers))))
    everything = [job_id for mine in claimed for job_id in mine]
    duplicates = [job_id for job_id, n in Counter(everything).items() if n > 1]
    assert duplicates == []
    assert sorted(everything) == ids
    assert sum(1 for mine in claimed if mine) > 1, "the claimers did not actually race"


async def test_claims_racing_inserts_miss_nothing(new_pool: PoolFactory) -> None:
    # Jobs committed while claims run (ids committed out of order) are still claimed, once.
    producers = [Outbox(await new_pool()) for _ in range(3)]
    claimers = [Outbox(await new_pool(), lease_seconds=60) for _ in range(3)]
    seen: list[int] = []
    producing = True

    async def produce(outbox: Outbox, base: int) -> None:
        for n in range(60):
            await outbox.enqueue(POST, base, n)

    async def claim(outbox: Outbox) -> None:
        while True:
            jobs = await outbox.claim(5)
            seen.extend(j.id for j in jobs)
            if not jobs:
                if not producing:
                    return
                await asyncio.sleep(0.001)

    async def all_produced() -> None:
        nonlocal producing
        await asyncio.gather(*(produce(p, i) for i, p in enumerate(producers)))
        producing = False

    await asyncio.gather(all_produced(), *(claim(c) for c in claimers))
    assert len(seen) == len(set(seen)) == 180
    assert sorted(seen) == await all_ids(producers[0])


async def test_a_row_held_mid_claim_is_skipped_not_waited_for(
    services: Services, new_pool: PoolFactory
) -> None:
    outbox = Outbox(services.pool)
    first, second = await enqueue_many(outbox, 2)
    async with (await new_pool()).acquire() as other:
        tx = other.transaction()
        await tx.start()  # (released with the connection if the test fails before rollback)
        # Another worker's claim, caught between locking the row and committing.
        await other.execute("SELECT id FROM outbox WHERE id = $1 FOR UPDATE", first)
        started = time.monotonic()
        got = await asyncio.wait_for(outbox.claim(10), timeout=5)
        assert time.monotonic() - started < 2
        assert [j.id for j in got] == [second]
        await tx.rollback()  # the other worker died before committing its claim
    (back,) = await outbox.claim(10)
    assert back.id == first and back.attempts == 1  # the failed claim left no trace


async def test_retry_later_hides_the_job_for_the_delay(services: Services) -> None:
    outbox = Outbox(services.pool, lease_seconds=60)
    await enqueue_many(outbox, 1)
    (job,) = await outbox.claim(1)
    await outbox.retry_later(job, 0.5)
    assert await outbox.claim(1) == []
    await asyncio.sleep(0.7)
    (again,) = await outbox.claim(1)
    assert again.id == job.id and again.attempts == 2
    await outbox.retry_later(again, 0)
    (third,) = await outbox.claim(1)
    assert third.id == job.id and third.attempts == 3


async def test_complete_forgets_only_the_given_jobs(services: Services) -> None:
    outbox = Outbox(services.pool, lease_seconds=0)
    ids = await enqueue_many(outbox, 4)
    await outbox.complete([])
    await outbox.complete([ids[1], ids[3], ids[3] + 1000])  # an unknown id is not an error
    assert await all_ids(outbox) == [ids[0], ids[2]]
    await outbox.complete([ids[1]])  # completing twice is harmless
    assert await outbox.pending() == 2
    assert [j.id for j in await outbox.claim(10)] == [ids[0], ids[2]]


def a_job(job_id: int, actor: int = 1, kind: str = POST) -> Job:
    return Job(id=job_id, kind=kind, actor_id=actor, subject_id=99, range_lo=None, range_hi=None, attempts=1)


async def test_split_replaces_a_job_by_its_chunks(services: Services) -> None:
    outbox = Outbox(services.pool)
    await outbox.enqueue(POST, 7, 99)
    (job,) = await outbox.claim(1)
    chunks = [Chunk(0, 100), Chunk(100, 250), Chunk(250, 2**63 - 1)]
    await outbox.split(job, POST_CHUNK, chunks)
    assert job.id not in await all_ids(outbox)
    parts = await outbox.claim(10)  # available at once, for any worker
    assert [(p.kind, p.actor_id, p.subject_id) for p in parts] == [(POST_CHUNK, 7, 99)] * 3
    assert [Chunk(p.range_lo or 0, p.range_hi or 0) for p in parts] == chunks
    assert all(p.attempts == 1 for p in parts)


async def test_a_failed_split_leaves_the_job_whole(services: Services) -> None:
    outbox = Outbox(services.pool, lease_seconds=0)
    await outbox.enqueue(POST, 7, 99)
    (job,) = await outbox.claim(1)
    # The second chunk cannot be stored (beyond bigint): the first must not be either.
    with pytest.raises((OverflowError, asyncpg.DataError)):
        await outbox.split(job, POST_CHUNK, [Chunk(0, 10), Chunk(10, 2**64)])
    assert await all_ids(outbox) == [job.id]
    (still,) = await outbox.claim(1)
    assert still.kind == POST and still.range_lo is None


async def test_others_of_counts_the_same_actor_and_kind_but_not_itself(services: Services) -> None:
    outbox = Outbox(services.pool, lease_seconds=0)
    await outbox.enqueue(POST, 7, 99)
    (job,) = await outbox.claim(1)
    await outbox.split(job, POST_CHUNK, [Chunk(0, 10), Chunk(10, 20), Chunk(20, 30)])
    # Noise: the same actor, another kind; another actor, the same kind.
    await outbox.enqueue(DELETE, 7, 99)
    await outbox.enqueue(POST, 8, 1)
    (other_actor,) = [j for j in await outbox.claim(10) if j.actor_id == 8]
    chunks = [j for j in await outbox.claim(10) if j.kind == POST_CHUNK]
    assert len(chunks) == 3
    assert [await outbox.others_of(c) for c in chunks] == [2, 2, 2]
    await outbox.complete([chunks[0].id])
    assert await outbox.others_of(chunks[1]) == 1
    await outbox.complete([chunks[1].id])
    assert await outbox.others_of(chunks[2]) == 0  # the last chunk knows it is the last
    assert await outbox.others_of(other_actor) == 0
    # A job that is no longer in the table counts every remaining one of its kind.
    assert await outbox.others_of(a_job(chunks[0].id, actor=7, kind=POST_CHUNK)) == 1


async def test_concurrent_last_chunks_each_see_the_others_until_completed(new_pool: PoolFactory) -> None:
    # Chunked work finishes when the last chunk sees no others: with every chunk completed,
    # at least one completer must see zero (none may be missed), whatever the interleaving.
    setup = Outbox(await new_pool())
    await setup.enqueue(POST, 7, 99)
    (job,) = await setup.claim(1)
    await setup.split(job, POST_CHUNK, [Chunk(i * 10, i * 10 + 10) for i in range(5)])
    workers = [Outbox(await new_pool()) for _ in range(5)]
    claimed = [await w.claim(1) for w in workers]
    assert sorted(len(c) for c in claimed) == [1] * 5

    async def finish(worker: Outbox, mine: Job) -> int:
        await worker.complete([mine.id])
        return await worker.others_of(mine)

    left = await asyncio.gather(*(finish(w, c[0]) for w, c in zip(workers, claimed, strict=True)))
    assert 0 in left
    assert await setup.pending() == 0


# ---- leases with holders, heartbeats, dead letters --------------------------------------------


async def dead_rows(pool: asyncpg.Pool) -> list[asyncpg.Record]:
    return await pool.fetch("SELECT id, kind, attempts, last_error FROM dead_jobs ORDER BY id")


async def test_renew_extends_only_the_jobs_this_holder_still_holds(new_pool: PoolFactory) -> None:
    mine = Outbox(await new_pool(), lease_seconds=0.5)
    other = Outbox(await new_pool(), lease_seconds=30)
    taken, kept, gone = await enqueue_many(mine, 3)
    assert [j.id for j in await mine.claim(10)] == [taken, kept, gone]
    await asyncio.sleep(0.7)  # every lease ran out: another worker takes one, one is finished
    (stolen,) = await other.claim(1)
    assert stolen.id == taken
    await mine.complete([gone])
    renewal = await mine.renew([taken, kept, gone])
    assert renewal.kept == {kept} and renewal.taken == {taken}
    assert await other.claim(10) == []  # the renewed one is hidden again
    held = await mine._pool.fetchval("SELECT available_at - now() FROM outbox WHERE id = $1", kept)
    assert held.total_seconds() > 0.3
    assert await mine.renew([]) == type(renewal)(frozenset(), frozenset())


async def test_renewals_keep_a_job_from_every_other_claimer(new_pool: PoolFactory) -> None:
    holder = Outbox(await new_pool(), lease_seconds=0.4)
    thieves = [Outbox(await new_pool(), lease_seconds=30) for _ in range(3)]
    (job_id,) = await enqueue_many(holder, 1)
    await holder.claim(1)
    deadline = time.monotonic() + 1.6  # four leases
    while time.monotonic() < deadline:
        assert (await holder.renew([job_id])).kept == {job_id}
        for thief in thieves:
            assert await thief.claim(1) == []
        await asyncio.sleep(0.1)


async def test_a_worker_that_lost_its_lease_cannot_retry_or_bury_the_job(new_pool: PoolFactory) -> None:
    late = Outbox(await new_pool(), lease_seconds=0.3)
    current = Outbox(await new_pool(), lease_seconds=30)
    await enqueue_many(late, 1)
    (job,) = await late.claim(1)
    await asyncio.sleep(0.5)
    (again,) = await current.claim(1)
    assert not await late.retry_later(job, 0, "boom")
    assert not await late.bury(job, "boom")
    assert await dead_rows(current._pool) == []
    row = await current._pool.fetchrow("SELECT available_at > now() AS hidden, last_error FROM outbox")
    assert row is not None
    assert row["hidden"] and row["last_error"] is None  # still leased to `current`, untouched
    assert await current.retry_later(again, 0, "bang")


async def test_bury_moves_the_job_and_its_error_in_one_step(services: Services) -> None:
    outbox = Outbox(services.pool, lease_seconds=30)
    first, second = await enqueue_many(outbox, 2, kind=DELETE, actor=5)
    job, _ = await outbox.claim(2)
    assert await outbox.bury(job, "Traceback ...\nValueError: nope")
    assert await all_ids(outbox) == [second]
    (dead,) = await services.pool.fetch("SELECT * FROM dead_jobs")
    assert (dead["id"], dead["kind"], dead["actor_id"], dead["subject_id"]) == (first, DELETE, 5, 0)
    assert dead["attempts"] == 1 and dead["last_error"].endswith("ValueError: nope")
    assert not await outbox.bury(job, "again")  # gone: nothing written twice
    assert len(await dead_rows(services.pool)) == 1


async def test_a_failing_bury_leaves_the_job_in_the_outbox(services: Services) -> None:
    outbox = Outbox(services.pool, lease_seconds=30)
    (job_id,) = await enqueue_many(outbox, 1)
    (job,) = await outbox.claim(1)
    # The dead letter cannot be written (its id is taken): the job must not leave the outbox.
    await services.pool.execute(
        "INSERT INTO dead_jobs (id, kind, actor_id, subject_id, created_at, attempts, last_error)"
        " VALUES ($1, 'x', $2, 0, now(), 0, 'x')",
        job_id,
        job.actor_id,
    )
    with pytest.raises(asyncpg.UniqueViolationError):
        await outbox.bury(job, "boom")
    assert await all_ids(outbox) == [job_id]


async def test_a_job_out_of_attempts_is_never_claimed_but_buried_by_the_sampler(services: Services) -> None:
    outbox = Outbox(services.pool, lease_seconds=0.2, max_attempts=3)
    (job_id,) = await enqueue_many(outbox, 1)
    (job,) = await outbox.claim(1)
    await outbox.retry_later(job, 0, "RuntimeError: first")
    for _ in range(2):  # two more claims, each by a worker that dies with the lease
        assert [j.id for j in await outbox.claim(1)] == [job_id]
        await asyncio.sleep(0.3)
    assert await outbox.claim(1) == []  # out of attempts
    stats = await outbox.sample()
    assert stats.buried == (POST,) and stats.dead == 1 and stats.depth == 0
    (dead,) = await dead_rows(services.pool)
    assert dead["id"] == job_id and dead["attempts"] == 3
    assert dead["last_error"].startswith("RuntimeError: first; then abandoned")
    assert (await outbox.sample()).buried == ()


async def test_the_sampler_leaves_a_leased_last_attempt_alone(services: Services) -> None:
    outbox = Outbox(services.pool, lease_seconds=30, max_attempts=1)
    (job_id,) = await enqueue_many(outbox, 1)
    await outbox.claim(1)  # the last attempt, still running
    stats = await outbox.sample()
    assert stats.buried == () and stats.depth == 1
    assert await all_ids(outbox) == [job_id]


async def test_sample_measures_depth_age_and_dead(services: Services) -> None:
    outbox = Outbox(services.pool)
    empty = await outbox.sample()
    assert (empty.depth, empty.oldest_age_seconds, empty.dead) == (0, 0.0, 0)
    await enqueue_many(outbox, 3)
    await services.pool.execute(
        "UPDATE outbox SET created_at = now() - interval '90 seconds' WHERE id = (SELECT min(id) FROM outbox)"
    )
    (job, *_) = await outbox.claim(1)
    await outbox.bury(job, "x")
    stats = await outbox.sample()
    assert stats.depth == 2 and stats.dead == 1
    assert stats.oldest_age_seconds < 60  # the 90-second-old job is dead, not waiting
