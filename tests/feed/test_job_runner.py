"""The outbox's job runner: who receives a post, a delete, a drain, driven job by job."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

from homefeed.feed.job_runner import ACTIVE_FOLLOWERS, STREAM, JobRunner
from homefeed.feed.services import Services
from homefeed.feed.store import outbox
from homefeed.feed.store.outbox import Outbox
from homefeed.feed.timeline.encoding import decode
from homefeed.feed.timeline.keys import Keys
from homefeed.workers.fanout_worker import FanoutWorker
from tests.conftest import ServicesFactory


def runner(services: Services, queue: Outbox) -> JobRunner:
    s = services.settings
    return JobRunner(
        services.pool,
        services.feeds,
        queue,
        services.notices,
        threshold=s.celebrity_threshold,
        active_days=s.active_days,
        chunk=s.fanout_chunk,
    )


async def run_all(services: Services) -> list[str]:
    """Claim and run every job, in turn; the kinds run."""
    queue = Outbox(services.pool, services.settings.job_lease_seconds)
    jobs = runner(services, queue)
    kinds: list[str] = []
    while claimed := await queue.claim(16):
        for job in claimed:
            await jobs.handle(job)
            kinds.append(job.kind)
        await queue.complete([j.id for j in claimed])
    return kinds


async def stored(services: Services, key: str) -> list[int]:
    raw = await services.redis.get(key)
    assert raw is None or isinstance(raw, bytes)
    return list(decode(raw).ids.tolist())


async def fans(services: Services, author: int, count: int, *, inactive: int = 0) -> list[int]:
    """`count` active and `inactive` long-unseen new followers of author (bulk SQL): ids, active first."""
    rows = await services.pool.fetch(
        """WITH fans AS (
               INSERT INTO users (handle, display_name, password_hash, following_count, last_seen_at)
               SELECT 'fan' || g, 'fan', 'x', 1,
                      CASE WHEN g > $2::int THEN now() - interval '400 days' ELSE now() END
               FROM generate_series(1, $2::int + $3::int) g RETURNING id, last_seen_at
           ), f1 AS (
               INSERT INTO follows (follower_id, followee_id) SELECT id, $1 FROM fans
           ), f2 AS (
               INSERT INTO followers (followee_id, follower_id) SELECT $1, id FROM fans
           )
           SELECT id FROM fans ORDER BY last_seen_at DESC, id""",
        author,
        count,
        inactive,
    )
    await services.pool.execute(
        "UPDATE users SET follower_count = $2 WHERE id = $1", author, count + inactive
    )
    return [r["id"] for r in rows]


async def test_a_post_reaches_every_active_follower_across_cursor_steps(
    make_services: ServicesFactory,
) -> None:
    services = await make_services(celebrity_threshold=math.inf, fanout_chunk=100_000)
    author = (await services.users.create("author", "author", "x")).id
    followers = await fans(services, author, STREAM * 2 + 10, inactive=30)
    active, inactive = followers[: STREAM * 2 + 10], followers[STREAM * 2 + 10 :]
    post = await services.posts.create(author, "to everyone")
    assert await run_all(services) == [outbox.POST]
    keys = Keys(services.settings.redis_prefix)
    async with services.redis.pipeline(transaction=False) as pipe:
        for user in followers:
            pipe.get(keys.timeline(user))
        raws = await pipe.execute()
    holding = {u for u, raw in zip(followers, raws, strict=True) if post.id in decode(raw).ids}
    assert holding == set(active)
    assert not holding & set(inactive)
    assert await stored(services, keys.timeline(author)) == [post.id]  # the author's own timeline


def plan_nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("Plans", []):
        yield from plan_nodes(child)


async def test_the_follower_query_reads_activity_without_visiting_users_rows(services: Services) -> None:
    # Fan-out's cost per follower must not include a visit to the follower's users row: that
    # visit grew with the number of users. Activity comes from an index-only scan.
    author = (await services.users.create("author", "author", "x")).id
    followers = await fans(services, author, 40, inactive=8)
    await services.pool.execute(
        "VACUUM (ANALYZE) users"
    )  # the visibility map, where no open transaction stops it
    async with services.pool.acquire() as conn, conn.transaction():
        # A handful of users fits one page, which PostgreSQL would rather read whole.
        await conn.execute("SET LOCAL enable_seqscan = off")
        await conn.execute("SET LOCAL enable_bitmapscan = off")
        for low, high in ((-1, outbox.MAX_ID), (followers[0], followers[30])):
            rows = await conn.fetch(ACTIVE_FOLLOWERS, author, low, high, 7)
            expected = sorted(f for f in followers[:40] if low < f <= high)
            assert [r["follower_id"] for r in rows] == expected
            raw = await conn.fetchval(
                "EXPLAIN (ANALYZE, FORMAT JSON) " + ACTIVE_FOLLOWERS, author, low, high, 7
            )
            scans = [n for n in plan_nodes(json.loads(raw)[0]["Plan"]) if n.get("Relation Name") == "users"]
            assert scans, "the query no longer reads users: update this test"
            # Heap fetches are not asserted: another session's open transaction keeps VACUUM
            # from marking the pages all-visible, and then each probe checks the heap.
            for scan in scans:
                assert (scan["Node Type"], scan["Index Name"]) == ("Index Only Scan", "users_activity"), scan


async def test_celebrity_posts_are_pulled_not_fanned_out(make_services: ServicesFactory) -> None:
    services = await make_services(celebrity_threshold=2)
    star, fan1, fan2, friend = [
        await services.users.create(h, h, "x") for h in ("star", "fan1", "fan2", "friend")
    ]
    for fan in (fan1, fan2):
        await services.relations.follow(fan.id, star.id)
    await services.relations.follow(fan1.id, friend.id)
    await run_all(services)  # the follows' upkeep jobs
    star_post = await services.posts.create(star.id, "shine")
    friend_post = await services.posts.create(friend.id, "hi")
    await run_all(services)
    # The star crossed the threshold: one write to their recent list, none to followers' timelines.
    keys = Keys(services.settings.redis_prefix)
    assert star_post.id in await stored(services, keys.recent(star.id))
    assert star_post.id not in await stored(services, keys.timeline(fan2.id))
    assert await stored(services, keys.timeline(fan1.id)) == [friend_post.id]
    assert await services.pool.fetchval("SELECT fanout_mode FROM users WHERE id = $1", star.id) == 1


async def test_a_delete_takes_the_post_out_of_the_recent_list(make_services: ServicesFactory) -> None:
    services = await make_services(celebrity_threshold=0)
    star = await services.users.create("star", "star", "x")
    kept = await services.posts.create(star.id, "stays")
    gone = await services.posts.create(star.id, "goes")
    await run_all(services)
    key = Keys(services.settings.redis_prefix).recent(star.id)
    assert await stored(services, key) == [kept.id, gone.id]
    await services.posts.delete(star.id, gone.id)
    assert await run_all(services) == [outbox.DELETE]
    assert await stored(services, key) == [kept.id]


async def test_leaving_pull_backfills_what_was_pulled_into_followers_timelines(
    make_services: ServicesFactory,
) -> None:
    services = await make_services(celebrity_threshold=2)
    star, fan1, fan2 = [await services.users.create(h, h, "x") for h in ("star", "fan1", "fan2")]
    for fan in (fan1, fan2):
        await services.relations.follow(fan.id, star.id)
    await run_all(services)
    pulled = [await services.posts.create(star.id, f"pulled {i}") for i in range(3)]
    await run_all(services)
    keys = Keys(services.settings.redis_prefix)
    assert await stored(services, keys.timeline(fan1.id)) == []
    # Down to one follower, well under the threshold: the next post starts the drain.
    await services.relations.unfollow(fan2.id, star.id)
    await services.pool.execute("UPDATE users SET follower_count = 1 WHERE id = $1", star.id)
    pushed = await services.posts.create(star.id, "pushed again")
    kinds = await run_all(services)
    assert outbox.DRAIN_CHUNK in kinds
    assert await stored(services, keys.timeline(fan1.id)) == [p.id for p in [*pulled, pushed]]
    assert set(await stored(services, keys.timeline(star.id))) >= {p.id for p in pulled}
    assert await services.pool.fetchval("SELECT fanout_mode FROM users WHERE id = $1", star.id) == 0


async def test_the_worker_runs_the_same_jobs(services: Services) -> None:
    author = (await services.users.create("author", "author", "x")).id
    (fan,) = await fans(services, author, 1)
    post = await services.posts.create(author, "via the worker")
    await FanoutWorker(services).drain()
    assert await stored(services, Keys(services.settings.redis_prefix).timeline(fan)) == [post.id]
