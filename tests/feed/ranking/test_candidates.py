"""Where a RANKED first page finds its candidates, and that every source gives the same ranking.

Candidates come from what a LATEST read merges (the viewer's timeline and pulled lists) when
they hold the whole window, filtered and given their features in one statement; PostgreSQL
answers otherwise. Social proof counts the viewer's followees among a post's likers from
either side. The counters it relies on (posts.like_count, affinity, author_recent) stay exact
under concurrent likes, unlikes and deletes.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator

import pytest
from asyncpg.connection import LoggedQuery

from homefeed.feed.config import Settings
from homefeed.feed.ranking import ranker as ranker_module
from homefeed.feed.ranking.features import AMONG, CANDIDATES, LIKERS_PER_FOLLOWEE, read_among
from homefeed.feed.ranking.ranker import RankedPage
from homefeed.feed.redis_client import open_redis
from homefeed.feed.services import Services, build_services
from homefeed.feed.store.pool import create_pool
from homefeed.workers.fanout_worker import FanoutWorker
from tests.conftest import FAST_PASSWORDS, ServicesFactory


class Logged:
    """An engine whose PostgreSQL statements are recorded."""

    def __init__(self) -> None:
        self.statements: list[str] = []
        self.services: Services | None = None

    def record(self, query: LoggedQuery) -> None:
        self.statements.append(query.query)


@pytest.fixture
async def logged(settings_: Settings) -> AsyncIterator[Logged]:
    log = Logged()
    assert settings_.database_url and settings_.redis_url
    pool = await create_pool(settings_.database_url, on_query=log.record)
    redis = await open_redis(settings_.redis_url)
    log.services = build_services(settings_, pool, redis, passwords=FAST_PASSWORDS)
    try:
        yield log
    finally:
        await log.services.close()


async def users(services: Services, *handles: str) -> list[int]:
    return [(await services.users.create(h, h, "x")).id for h in handles]


async def world(services: Services) -> tuple[int, list[int]]:
    """A viewer following four authors who posted, liked each other's posts and the viewer's."""
    viewer, *authors = await users(services, "viewer", "a1", "a2", "a3", "a4", "stranger")
    stranger = authors.pop()
    for a in authors:
        await services.relations.follow(viewer, a)
    posts = [await services.posts.create(authors[i % 4], f"post {i}") for i in range(24)]
    posts.append(await services.posts.create(viewer, "mine"))
    rng = random.Random(7)
    for p in posts:
        for liker in rng.sample([viewer, stranger, *authors], rng.randrange(0, 5)):
            await services.likes.like(liker, p.id)
    await services.relations.mute(viewer, authors[3])
    await services.posts.delete(authors[0], posts[0].id)
    await FanoutWorker(services).drain()
    return viewer, [p.id for p in posts]


def ranking(page: RankedPage) -> list[tuple[int, float | None]]:
    return list(zip(page.page.post_ids, page.scores, strict=True))


async def flush(services: Services) -> None:
    prefix = services.settings.redis_prefix
    keys = [k async for k in services.redis.scan_iter(match=f"{prefix}:*", count=1000)]
    if keys:
        await services.redis.delete(*keys)


async def test_a_warm_timeline_gives_the_candidates_and_postgresql_agrees(logged: Logged) -> None:
    services = logged.services
    assert services is not None
    viewer, _ = await world(services)
    await services.feeds.home(viewer, 5, None)  # a LATEST read builds the timeline
    now = time.time()
    services.ranker.clock = lambda: now
    logged.statements.clear()
    from_lists = await services.ranker.first(viewer, 20)
    assert AMONG in logged.statements and CANDIDATES not in logged.statements
    await flush(services)
    logged.statements.clear()
    from_postgres = await services.ranker.first(viewer, 20)
    assert CANDIDATES in logged.statements and AMONG not in logged.statements
    assert ranking(from_lists) == ranking(from_postgres)
    assert from_lists.snapshot == from_postgres.snapshot  # same order, scores and floor


async def test_lists_short_of_the_window_leave_it_to_postgresql(
    services: Services, make_services: ServicesFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    viewer, _ = await world(services)
    now = time.time()
    services.ranker.clock = lambda: now
    await flush(services)
    reference = await services.ranker.first(viewer, 20)
    # A timeline of 3 posts holds the newest ones only: the window reaches below its floor.
    tiny = await make_services(timeline_size=3)
    await tiny.feeds.home(viewer, 2, None)
    window = await tiny.feeds.window(viewer, 0)
    assert window is not None and not window.whole and len(window.ids) >= 3
    tiny.ranker.clock = lambda: now
    assert ranking(await tiny.ranker.first(viewer, 20)) == ranking(reference)
    # With the cap met above the lists' floor, their candidates suffice: PostgreSQL's reference
    # statement is not asked, and the candidates are still the newest visible ones.
    capped = await make_services(timeline_size=3, ranked_candidates=2)
    capped.ranker.clock = lambda: now

    async def refuse(*args: object) -> None:
        raise AssertionError("the candidates were read from PostgreSQL")

    monkeypatch.setattr(ranker_module, "read_candidates", refuse)
    newest = await capped.feeds.pull_page(viewer, 2, None)
    got = await capped.ranker.first(viewer, 20)
    assert sorted(got.page.post_ids[:2]) == sorted(newest.post_ids)


async def test_social_proof_counts_followees_among_likers_from_either_side(services: Services) -> None:
    viewer, friend, x, y, z = await users(services, "viewer", "friend", "x", "y", "z")
    crowd = await users(services, *(f"c{i}" for i in range(LIKERS_PER_FOLLOWEE)))
    await services.relations.follow(viewer, friend)
    # The likers are read and checked against the viewer's follows.
    few = await services.posts.create(friend, "liked by the friend alone")
    await services.likes.like(friend, few.id)
    some = await services.posts.create(friend, "liked by some")
    for liker in (x, y, friend, z):
        await services.likes.like(liker, some.id)
    # Liked by more than LIKERS_PER_FOLLOWEE times the viewer's followees: each followee is checked.
    many = await services.posts.create(friend, "liked by a crowd")
    for liker in (*crowd, friend):
        await services.likes.like(liker, many.id)
    crowded = await services.posts.create(friend, "liked by a crowd, not the friend")
    for liker in (*crowd, x):
        await services.likes.like(liker, crowded.id)
    strangers = await services.posts.create(friend, "liked by strangers")
    for liker in (x, y):
        await services.likes.like(liker, strangers.id)
    unliked = await services.posts.create(friend, "liked and unliked")
    await services.likes.like(friend, unliked.id)
    await services.likes.unlike(friend, unliked.id)
    ids = [few.id, some.id, many.id, crowded.id, strangers.id, unliked.id]
    found = await read_among(services.pool, viewer, ids, int(time.time() * 1000), 800)
    social = dict(zip(found.ids.tolist(), found.social.tolist(), strict=True))
    likes = dict(zip(found.ids.tolist(), found.likes.tolist(), strict=True))
    assert social == {few.id: 1, some.id: 1, many.id: 1, crowded.id: 0, strangers.id: 0, unliked.id: 0}
    n = LIKERS_PER_FOLLOWEE + 1
    assert likes == {few.id: 1, some.id: 4, many.id: n, crowded.id: n, strangers.id: 2, unliked.id: 0}


async def test_counters_stay_exact_under_racing_likes_unlikes_and_deletes(services: Services) -> None:
    """Many users like and unlike the same posts at once, twice over, while some are deleted:
    every counter the ranked read relies on equals a recount of the likes afterwards."""
    authors = await users(services, "a", "b")
    likers = await users(services, *(f"l{i}" for i in range(12)))
    posts = [await services.posts.create(authors[i % 2], f"p{i}") for i in range(6)]
    rng = random.Random(3)

    async def churn(user: int) -> None:
        for _ in range(30):
            post = rng.choice(posts).id
            try:
                if rng.random() < 0.6:
                    await services.likes.like(user, post)
                else:
                    await services.likes.unlike(user, post)
            except Exception as exc:  # a post deleted meanwhile refuses likes: that is the race
                assert type(exc).__name__ == "NotFound", exc

    async def delete_later() -> None:
        await asyncio.sleep(0.05)
        await services.posts.delete(authors[0], posts[0].id)
        await asyncio.sleep(0.05)
        await services.posts.delete(authors[1], posts[1].id)

    await asyncio.gather(*(churn(u) for u in likers), *(churn(u) for u in likers[:4]), delete_later())
    pool = services.pool
    drift = await pool.fetch(
        """SELECT p.id, p.like_count, (SELECT count(*) FROM likes l WHERE l.post_id = p.id) AS n
           FROM posts p WHERE p.like_count <> (SELECT count(*) FROM likes l WHERE l.post_id = p.id)"""
    )
    assert not drift, f"like_count differs from the likes: {drift}"
    affinity = await pool.fetch(
        """SELECT * FROM (
               SELECT l.user_id, p.author_id, count(*) AS n FROM likes l JOIN posts p ON p.id = l.post_id
               GROUP BY 1, 2) c
           FULL JOIN (SELECT user_id, author_id, sum(likes) AS kept FROM affinity GROUP BY 1, 2) a
           USING (user_id, author_id)
           WHERE coalesce(c.n, 0) <> coalesce(a.kept, 0)"""
    )
    assert not affinity, f"affinity differs from the likes: {affinity}"
    engagement = await pool.fetch(
        """SELECT * FROM (
               SELECT p.author_id, count(*) AS n FROM likes l JOIN posts p ON p.id = l.post_id GROUP BY 1) c
           FULL JOIN (SELECT author_id, sum(d) AS kept FROM author_recent, unnest(likes) AS d GROUP BY 1) a
           USING (author_id)
           WHERE coalesce(c.n, 0) <> coalesce(a.kept, 0)"""
    )
    assert not engagement, f"author_recent differs from the likes: {engagement}"
