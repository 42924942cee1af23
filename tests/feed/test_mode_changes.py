"""An author's fan-out mode changes (push -> pull -> draining -> push) lose no post.

Each test tries to lose the posts an author made while pulled: a fault injected between
the move to DRAINING and its drain jobs, a second worker running the author's next post
in that window, an earlier post's job retried after a later one moved the author to PULL,
a multi-chunk drain run by one batch or by two workers at once. The follower's timeline
is built before the pulled posts, so it vouches for all history and never asks PostgreSQL
for what it lacks: a post the drain skipped stays missing from the home feed.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest
from prometheus_client import REGISTRY

from homefeed.feed import modes
from homefeed.feed.services import Services
from homefeed.feed.store import outbox
from homefeed.feed.store.outbox import Job, Outbox
from homefeed.workers.fanout_worker import FanoutWorker
from tests.conftest import ServicesFactory, delete_prefix
from tests.feed.test_job_runner import fans, runner

# ---- running jobs -------------------------------------------------------------------------------


async def settle(services: Services, queue: Outbox | None = None) -> list[str]:
    """Run jobs as a worker does (a claimed batch is completed at its end) until none is left.

    A job that fails is made available again at once, so an injected fault means a retry.
    Returns the kinds of the jobs that succeeded, in order. Jobs leased elsewhere are left.
    """
    queue = queue or Outbox(services.pool, 30)
    jobs = runner(services, queue)
    kinds: list[str] = []
    for _ in range(200):
        claimed = await queue.claim(16)
        if not claimed:
            return kinds
        done: list[int] = []
        for job in claimed:
            try:
                await jobs.handle(job)
            except Exception:
                await queue.retry_later(job, 0)
            else:
                done.append(job.id)
                kinds.append(job.kind)
        await queue.complete(done)
    raise AssertionError("the outbox never drained")


async def home(services: Services, viewer: int) -> list[int]:
    return (await services.feeds.home(viewer, 100, None)).post_ids


async def truth(services: Services, viewer: int) -> list[int]:
    """The PostgreSQL pull query: the reference answer."""
    return (await services.feeds.pull_page(viewer, 100, None)).post_ids


async def mode_of(services: Services, author: int) -> int:
    mode: int = await services.pool.fetchval("SELECT fanout_mode FROM users WHERE id = $1", author)
    return mode


# ---- a pulled author about to leave PULL ---------------------------------------------------------


@dataclass(frozen=True)
class Scene:
    star: int
    fan: int  # stays: the follower whose feed must hold every post
    leaver: int  # unfollows, taking the star below the threshold
    pulled: list[int]


async def pulled_star(services: Services, posts: int = 2) -> Scene:
    """A star followed by two fans (threshold 2: pulled), with posts made while pulled; one fan leaves.

    The staying fan's timeline is built first, holding all history, so from then on it is fed
    only by fan-out and by the drain.
    """
    star, fan, leaver = [(await services.users.create(h, h, "x")).id for h in ("star", "fan", "leaver")]
    for f in (fan, leaver):
        await services.relations.follow(f, star)
    await settle(services)
    assert await home(services, fan) == []  # builds the fan's timeline: empty, whole history
    pulled = [(await services.posts.create(star, f"pulled {i}")).id for i in range(posts)]
    await settle(services)
    assert await mode_of(services, star) == modes.PULL
    await services.relations.unfollow(leaver, star)
    await settle(services)
    return Scene(star, fan, leaver, pulled)


async def assert_nothing_lost(services: Services, scene: Scene, expected: Sequence[int]) -> None:
    want = sorted(expected, reverse=True)
    assert await truth(services, scene.fan) == want
    assert await home(services, scene.fan) == want, "the home feed lost posts the pull query has"
    assert await mode_of(services, scene.star) == modes.PUSH, "the drain never finished"
    assert await Outbox(services.pool).pending() == 0
    # Nor does a Redis flush lose anything: timelines come back from PostgreSQL.
    await delete_prefix(services.redis, services.settings.redis_prefix)
    assert await home(services, scene.fan) == want
    assert await home(services, scene.fan) == want  # and from the rebuilt timeline


# ---- injected faults in PostgreSQL ---------------------------------------------------------------


async def fail_drain_inserts_once(pool: asyncpg.Pool) -> None:
    """The first insert of a drain job raises: whatever code inserts them, in whatever transaction.

    A sequence counts the attempts because it is not rolled back with the failing statement.
    """
    await pool.execute(
        """CREATE SEQUENCE injected_faults;
           CREATE FUNCTION inject_fault() RETURNS trigger LANGUAGE plpgsql AS $$
           BEGIN
               IF NEW.kind = 'drain_chunk' AND nextval('injected_faults') = 1 THEN
                   RAISE EXCEPTION 'injected fault: inserting a drain job';
               END IF;
               RETURN NEW;
           END $$;
           CREATE TRIGGER inject_fault BEFORE INSERT ON outbox
               FOR EACH ROW EXECUTE FUNCTION inject_fault();"""
    )


async def injected_faults(pool: asyncpg.Pool) -> int:
    count: int = await pool.fetchval("SELECT last_value FROM injected_faults")
    return count


@pytest.fixture
async def gate(services: Services) -> AsyncIterator[Gate]:
    opened = await Gate.open(services)
    try:
        yield opened
    finally:
        await opened.close()


class Gate:
    """Holds every insert of a drain job until released: a worker paused between two statements."""

    def __init__(self, conn: asyncpg.Connection, key: tuple[int, int]) -> None:
        self._conn = conn
        self.key = key
        self._held = False

    @classmethod
    async def open(cls, services: Services) -> Gate:
        assert services.settings.database_url
        key = (random.randrange(1, 2**31), random.randrange(1, 2**31))  # advisory locks span databases
        conn = await asyncpg.connect(services.settings.database_url)
        await conn.execute(
            f"""CREATE FUNCTION hold_drain() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN
                    IF NEW.kind = 'drain_chunk' THEN
                        PERFORM pg_advisory_xact_lock_shared({key[0]}, {key[1]});
                    END IF;
                    RETURN NEW;
                END $$;
                CREATE TRIGGER hold_drain BEFORE INSERT ON outbox
                    FOR EACH ROW EXECUTE FUNCTION hold_drain();"""
        )
        await conn.execute("SELECT pg_advisory_lock($1, $2)", *key)
        gate = cls(conn, key)
        gate._held = True
        return gate

    async def waiting_pid(self) -> int | None:
        """The backend blocked at the gate, if any."""
        pid: int | None = await self._conn.fetchval(
            """SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND NOT granted
               AND classid::bigint = $1 AND objid::bigint = $2 LIMIT 1""",
            *self.key,
        )
        return pid

    async def blocks_someone(self, pid: int) -> bool:
        """Whether another backend waits for a lock that `pid` holds."""
        found: bool = await self._conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid)))", pid
        )
        return found

    async def release(self) -> None:
        if self._held:
            await self._conn.execute("SELECT pg_advisory_unlock($1, $2)", *self.key)
            self._held = False

    async def close(self) -> None:
        await self.release()
        await self._conn.close()


async def until(what: str, check: Callable[[], Awaitable[bool]], seconds: float = 15.0) -> None:
    for _ in range(int(seconds / 0.02)):
        if await check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting until {what}")


async def claim_one(queue: Outbox, subject: int) -> Job:
    (job,) = await queue.claim(1)
    assert job.subject_id == subject, (job, subject)
    return job


# ---- reproductions --------------------------------------------------------------------------------


async def test_a_fault_inserting_the_drain_jobs_loses_nothing(make_services: ServicesFactory) -> None:
    # Reproduced on the old code: the feed showed ['pushed 3'] while PostgreSQL had 3 posts.
    services = await make_services(celebrity_threshold=2)
    scene = await pulled_star(services)
    await fail_drain_inserts_once(services.pool)
    pushed = (await services.posts.create(scene.star, "pushed 3")).id
    kinds = await settle(services)
    assert await injected_faults(services.pool) >= 1, "the fault never fired"
    await assert_nothing_lost(services, scene, [*scene.pulled, pushed])
    assert outbox.DRAIN_CHUNK in kinds


async def test_a_crash_right_after_the_move_to_draining_loses_nothing(
    make_services: ServicesFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The job dies after its mode change committed, before its first timeline write: the
    # retry finds DRAINING and must carry on the drain, not declare it finished.
    services = await make_services(celebrity_threshold=2)
    scene = await pulled_star(services)
    real_push = services.feeds.push
    failures: list[int] = []

    async def push_failing_once(users: Sequence[int], post_id: int) -> None:
        if not failures:
            failures.append(post_id)
            raise ConnectionError("injected fault: the worker dies here")
        await real_push(users, post_id)

    monkeypatch.setattr(services.feeds, "push", push_failing_once)
    pushed = (await services.posts.create(scene.star, "pushed 3")).id
    await settle(services)
    assert failures == [pushed]
    await assert_nothing_lost(services, scene, [*scene.pulled, pushed])


async def test_a_second_worker_running_the_next_post_mid_transition_loses_nothing(
    make_services: ServicesFactory, gate: Gate
) -> None:
    # Reproduced on the old code: ['pushed 4', 'pushed 3'] against 4 posts. Worker A, moving
    # the star to DRAINING for post 3, is paused before its drain jobs are inserted; worker B
    # runs post 4 meanwhile. B must wait for A (or see A's drain jobs), never finish the drain.
    services = await make_services(celebrity_threshold=2)
    scene = await pulled_star(services)
    third = (await services.posts.create(scene.star, "pushed 3")).id
    fourth = (await services.posts.create(scene.star, "pushed 4")).id
    queue_a, queue_b = Outbox(services.pool, 30), Outbox(services.pool, 30)
    worker_a, worker_b = runner(services, queue_a), runner(services, queue_b)
    job_a, job_b = await claim_one(queue_a, third), await claim_one(queue_b, fourth)

    task_a = asyncio.create_task(worker_a.handle(job_a))
    await until("worker A is paused inserting the drain jobs", lambda: _truthy(gate.waiting_pid()))
    a_pid = await gate.waiting_pid()
    assert a_pid is not None
    task_b = asyncio.create_task(worker_b.handle(job_b))

    async def b_done_or_waiting_for_a() -> bool:
        return task_b.done() or await gate.blocks_someone(a_pid)

    await until("worker B finished or waits for worker A", b_done_or_waiting_for_a)
    await gate.release()
    await asyncio.gather(task_a, task_b)
    await queue_a.complete([job_a.id])
    await queue_b.complete([job_b.id])
    await settle(services)
    await assert_nothing_lost(services, scene, [*scene.pulled, third, fourth])


async def _truthy(value: Awaitable[Any]) -> bool:
    return bool(await value)


async def test_an_earlier_posts_job_retried_after_the_move_to_pull_is_drained_too(
    make_services: ServicesFactory,
) -> None:
    # Post 1's job is claimed by a worker that dies; post 2's job moves the star to PULL; post
    # 1's job, redone after the lease, finds PULL and only lists it. The drain must still copy
    # post 1 into the fan's timeline, though it is older than the post that started PULL.
    services = await make_services(celebrity_threshold=2)
    star, fan, other = [(await services.users.create(h, h, "x")).id for h in ("star", "fan", "other")]
    await services.relations.follow(fan, star)
    await settle(services)
    assert await home(services, fan) == []  # built: whole history
    first = (await services.posts.create(star, "first")).id
    dead_worker = Outbox(services.pool, 3600)
    lost_job = await claim_one(dead_worker, first)  # ... and never run
    await services.relations.follow(other, star)
    second = (await services.posts.create(star, "second")).id
    await settle(services)
    assert await mode_of(services, star) == modes.PULL
    # The lease runs out: another worker redoes the job.
    await services.pool.execute("UPDATE outbox SET available_at = now() WHERE id = $1", lost_job.id)
    await settle(services)
    assert await home(services, fan) == [second, first]  # pulled, meanwhile
    await services.relations.unfollow(other, star)
    third = (await services.posts.create(star, "third")).id
    await settle(services)
    scene = Scene(star, fan, other, [first, second])
    await assert_nothing_lost(services, scene, [first, second, third])


async def test_a_multi_chunk_drain_finishes_within_one_batch(make_services: ServicesFactory) -> None:
    # Reproduced on the old code: with a chunk of one follower, every drain chunk of the batch
    # saw its siblings (deleted only at the batch's end) and none finished the drain.
    services = await make_services(celebrity_threshold=3, fanout_chunk=1)
    star, fan, f2, f3 = [(await services.users.create(h, h, "x")).id for h in ("star", "fan", "f2", "f3")]
    for f in (fan, f2, f3):
        await services.relations.follow(f, star)
    await FanoutWorker(services).drain()
    assert await home(services, fan) == []
    pulled = [(await services.posts.create(star, f"pulled {i}")).id for i in range(3)]
    await FanoutWorker(services).drain()
    assert await mode_of(services, star) == modes.PULL
    await services.relations.unfollow(f3, star)
    await services.relations.unfollow(f2, star)
    pushed = (await services.posts.create(star, "pushed")).id
    await FanoutWorker(services).drain()
    assert await services.pool.fetchval("SELECT count(*) FROM outbox") == 0
    assert await mode_of(services, star) == modes.PUSH, "the drain is stuck: no chunk finished it"
    scene = Scene(star, fan, f2, pulled)
    await assert_nothing_lost(services, scene, [*pulled, pushed])
    # Pushed from now on: a new post reaches the fan by fan-out alone.
    later = (await services.posts.create(star, "later")).id
    await FanoutWorker(services).drain()
    assert (await home(services, fan))[0] == later


async def test_two_workers_racing_a_multi_chunk_drain_finish_it_once_everything_is_copied(
    make_services: ServicesFactory,
) -> None:
    services = await make_services(celebrity_threshold=12, fanout_chunk=1)
    star = (await services.users.create("star", "star", "x")).id
    followers = await fans(services, star, 12)
    fan = followers[0]
    assert await home(services, fan) == []
    pulled = [(await services.posts.create(star, f"pulled {i}")).id for i in range(3)]
    await FanoutWorker(services).drain()
    assert await mode_of(services, star) == modes.PULL
    await services.pool.execute(
        "DELETE FROM follows WHERE followee_id = $1 AND follower_id = ANY($2::bigint[])", star, followers[6:]
    )
    await services.pool.execute(
        "DELETE FROM followers WHERE followee_id = $1 AND follower_id = ANY($2::bigint[])",
        star,
        followers[6:],
    )
    await services.pool.execute("UPDATE users SET follower_count = 6 WHERE id = $1", star)
    pushed = (await services.posts.create(star, "pushed")).id
    # Small batches, so the two workers interleave chunk by chunk.
    queues = [Outbox(services.pool, 30), Outbox(services.pool, 30)]

    async def work(queue: Outbox) -> None:
        jobs = runner(services, queue)
        while claimed := await queue.claim(2):
            for job in claimed:
                await jobs.handle(job)
                await asyncio.sleep(0)
            await queue.complete([j.id for j in claimed])

    await asyncio.gather(*(work(q) for q in queues))
    await settle(services)
    for user in followers[:6]:
        assert await home(services, user) == [pushed, *reversed(pulled)]
    assert await mode_of(services, star) == modes.PUSH


async def test_a_draining_author_without_drain_jobs_is_drained_again_not_declared_done(
    make_services: ServicesFactory,
) -> None:
    # DRAINING with no drain job left: a drain chunk buried as a dead letter, or a database
    # from before drains were transactional. Finishing would strand the pulled posts.
    services = await make_services(celebrity_threshold=2)
    scene = await pulled_star(services)
    await services.pool.execute("UPDATE users SET fanout_mode = 2 WHERE id = $1", scene.star)
    pushed = (await services.posts.create(scene.star, "pushed")).id
    await settle(services)
    await assert_nothing_lost(services, scene, [*scene.pulled, pushed])


# ---- fan-out lag ---------------------------------------------------------------------------------


def lag_count() -> float:
    return REGISTRY.get_sample_value("homefeed_fanout_lag_seconds_count") or 0.0


def lag_sum() -> float:
    return REGISTRY.get_sample_value("homefeed_fanout_lag_seconds_sum") or 0.0


async def test_fanout_lag_is_observed_once_per_job_that_reaches_followers(
    make_services: ServicesFactory,
) -> None:
    services = await make_services(celebrity_threshold=math.inf, fanout_chunk=100_000)
    author = (await services.users.create("author", "author", "x")).id
    await fans(services, author, 5000)  # several cursor steps: still one observation
    before_count, before_sum = lag_count(), lag_sum()
    await services.posts.create(author, "to everyone")
    await settle(services)
    assert lag_count() == before_count + 1
    assert 0 <= lag_sum() - before_sum < 60

    chunked = await make_services(celebrity_threshold=math.inf, fanout_chunk=2000)
    before_count = lag_count()
    await chunked.posts.create(author, "in chunks")
    kinds = await settle(chunked)
    # Each chunk job observes once; the parent, which wrote only the author's own timeline, not.
    chunks = kinds.count(outbox.POST_CHUNK)
    assert chunks >= 3
    assert lag_count() == before_count + chunks

    pulled = await make_services(celebrity_threshold=0)
    before_count = lag_count()
    await pulled.posts.create(author, "pulled")
    await settle(pulled)
    assert lag_count() == before_count + 1  # the recent list is where followers read it


async def test_a_deleted_posts_job_observes_no_lag(make_services: ServicesFactory) -> None:
    services = await make_services(celebrity_threshold=math.inf)
    author = (await services.users.create("author", "author", "x")).id
    await fans(services, author, 3)
    post = (await services.posts.create(author, "gone")).id
    await services.posts.delete(author, post)
    before = lag_count()
    await settle(services)
    assert lag_count() == before
