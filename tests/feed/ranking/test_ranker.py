"""The ranked feed's engine: counters kept by the write path, features, snapshots, paging, expiry."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from homefeed.feed.errors import InvalidInput
from homefeed.feed.ids import make_id
from homefeed.feed.ranking.features import NAMES
from homefeed.feed.ranking.ranker import EXPIRED, RankedPage
from homefeed.feed.ranking.scoring import Model, write_model
from homefeed.feed.services import Services
from homefeed.workers.fanout_worker import FanoutWorker
from tests.conftest import ServicesFactory


async def users(services: Services, *handles: str) -> list[int]:
    return [(await services.users.create(h, h, "x")).id for h in handles]


async def walk(services: Services, viewer: int, first: int) -> tuple[list[int], list[RankedPage]]:
    """Every page of the viewer's ranked feed, following cursors as the resolver does."""
    ranker = services.ranker
    pages = [await ranker.first(viewer, first)]
    while pages[-1].page.has_next:
        last = pages[-1]
        assert len(last.page.post_ids) == first, "a page said more exists but is short"
        position = last.positions[-1]
        if position is None:
            pages.append(await ranker.below(viewer, first, last.page.post_ids[-1]))
        else:
            assert last.snapshot is not None
            pages.append(await ranker.at(viewer, first, last.snapshot, position + 1))
        assert len(pages) < 1000
    ids = [i for p in pages for i in p.page.post_ids]
    return ids, pages


async def latest(services: Services, viewer: int) -> list[int]:
    ids: list[int] = []
    before = None
    while True:
        page = await services.feeds.home(viewer, 100, before)
        ids += page.post_ids
        if not page.has_next:
            return ids
        before = ids[-1]


async def test_likes_keep_affinity_and_author_engagement_current(services: Services) -> None:
    viewer, ann = await users(services, "viewer", "ann")
    posts = [await services.posts.create(ann, f"p{i}") for i in range(3)]
    for p in posts:
        await services.likes.like(viewer, p.id)
    await services.likes.like(viewer, posts[0].id)  # twice counts once
    await services.likes.unlike(viewer, posts[1].id)
    await services.likes.unlike(viewer, posts[1].id)  # again: a no-op
    affinity = await services.pool.fetchval(
        "SELECT sum(likes) FROM affinity WHERE user_id = $1 AND author_id = $2", viewer, ann
    )
    row = await services.pool.fetchrow(
        """SELECT sum(d.posts) AS p, sum(d.likes) AS l
           FROM author_recent r, unnest(r.days, r.posts, r.likes) AS d (day, posts, likes)
           WHERE r.author_id = $1""",
        ann,
    )
    assert row is not None
    assert (affinity, row["p"], row["l"]) == (2, 3, 2)


async def test_social_proof_and_affinity_lift_older_posts(services: Services) -> None:
    viewer, ann, bob, cat = await users(services, "viewer", "ann", "bob", "cat")
    for who in (ann, bob, cat):
        await services.relations.follow(viewer, who)
    old_ann = await services.posts.create(ann, "ann, liked by those the viewer follows")
    old_bob = await services.posts.create(bob, "bob, whom the viewer likes")
    newer = [await services.posts.create(cat, f"cat {i}") for i in range(4)]
    await services.likes.like(bob, old_ann.id)
    await services.likes.like(cat, old_ann.id)
    earlier_bob = await services.posts.create(bob, "an earlier like of bob")
    await services.likes.like(viewer, earlier_bob.id)
    await services.likes.like(viewer, old_bob.id)
    page = await services.ranker.first(viewer, 10)
    order = page.page.post_ids
    # Boosted posts outrank cat's newer ones, which the viewer shows no interest in (bob's
    # second post waits two places behind his first: diversity).
    assert order.index(old_ann.id) < order.index(newer[-1].id)
    assert order.index(old_bob.id) < order.index(newer[1].id)
    assert set(order) == {old_ann.id, old_bob.id, earlier_bob.id, *(p.id for p in newer)}
    assert all(s is not None for s in page.scores)


async def test_pages_come_from_the_snapshot_while_posts_and_likes_arrive(services: Services) -> None:
    viewer, *authors = await users(services, "viewer", "a1", "a2", "a3", "a4")
    for a in authors:
        await services.relations.follow(viewer, a)
    for i in range(30):
        await services.posts.create(authors[i % 4], f"post {i}")
    await FanoutWorker(services).drain()
    before = await latest(services, viewer)
    ranker = services.ranker
    first = await ranker.first(viewer, 7)
    got = list(first.page.post_ids)
    current = first
    # Between pages: new posts, likes that would change the ranking, a like storm on the last post.
    n = 0
    while current.page.has_next:
        new = await services.posts.create(authors[n % 4], f"meanwhile {n}")
        await services.likes.like(authors[(n + 1) % 4], before[-1 - n % len(before)])
        await services.likes.like(viewer, new.id)
        n += 1
        position = current.positions[-1]
        assert position is not None and current.snapshot is not None
        current = await ranker.at(viewer, 7, current.snapshot, position + 1)
        got += current.page.post_ids
    assert len(got) == len(set(got)), "a post repeated"
    assert sorted(got) == sorted(before), "the walk is the feed as it was at the first page"


async def test_deleted_and_hidden_posts_are_dropped_and_pages_stay_full(services: Services) -> None:
    viewer, ann, bob = await users(services, "viewer", "ann", "bob")
    for a in (ann, bob):
        await services.relations.follow(viewer, a)
    mine = [await services.posts.create(a, f"{i}") for i in range(10) for a in (ann, bob)]
    await FanoutWorker(services).drain()
    first = await services.ranker.first(viewer, 4)
    snapshot = first.snapshot
    assert snapshot is not None
    shown = set(first.page.post_ids)
    rest = [p for p in mine if p.id not in shown]
    await services.relations.mute(viewer, bob)
    await services.posts.delete(ann, next(p.id for p in rest if p.author_id == ann))
    await FanoutWorker(services).drain()
    ids, pages = [], []
    current = first
    while current.page.has_next:
        position = current.positions[-1]
        assert position is not None
        current = await services.ranker.at(viewer, 4, snapshot, position + 1)
        pages.append(current)
        ids += current.page.post_ids
    remaining_ann = [p.id for p in rest if p.author_id == ann][1:]
    assert sorted(ids) == sorted(remaining_ann)
    assert all(len(p.page.post_ids) == 4 for p in pages[:-1])


def shown(ranked: RankedPage) -> tuple[object, ...]:
    """What a page shows: its posts with their authors, the viewer's likes and follows of them."""
    page = ranked.page
    ids = set(page.post_ids)
    posts = sorted(p for p in page.posts if p.id in ids)
    by_id = {a.id: a for a in page.authors}
    authors = sorted(by_id[p.author_id] for p in posts)
    followed = sorted({p.author_id for p in posts} & (page.followed or frozenset()))
    liked = sorted(ids & (page.liked or frozenset()))
    return page.post_ids, page.has_next, ranked.positions, ranked.scores, posts, authors, followed, liked


async def test_the_first_page_shows_what_the_features_statement_read(services: Services) -> None:
    viewer, ann, bob, cat, eve = await users(services, "viewer", "ann", "bob", "cat", "eve")
    for a in (ann, bob, cat):
        await services.relations.follow(viewer, a)
    await services.relations.mute(viewer, cat)
    everyone = (ann, bob, cat, eve, viewer)
    posts = [await services.posts.create(a, f"{a}: {i}") for i in range(4) for a in everyone]
    await services.posts.delete(ann, posts[0].id)
    for p in posts[1:12]:
        if p.author_id in (bob, viewer):
            await services.likes.like(viewer, p.id)
    await FanoutWorker(services).drain()
    batches = services.feeds.visible_reads.batches
    first = await services.ranker.first(viewer, 5)
    # No visibility statement: the features statement already filtered and read the page's posts.
    assert services.feeds.visible_reads.batches == batches
    assert first.snapshot is not None and first.page.has_next
    assert first.page.liked, "the page shows posts the viewer likes"
    # The same page read from the snapshot's top through the visibility read.
    again = await services.ranker.at(viewer, 5, first.snapshot, 0)
    assert services.feeds.visible_reads.batches > batches
    assert shown(first) == shown(again)
    visible = {p.id for p in posts[1:] if p.author_id in (ann, bob, viewer)}
    assert set(first.page.post_ids) <= visible


async def test_an_expired_snapshot_is_refused(services: Services) -> None:
    viewer, ann = await users(services, "viewer", "ann")
    await services.relations.follow(viewer, ann)
    for i in range(5):
        await services.posts.create(ann, f"{i}")
    page = await services.ranker.first(viewer, 2)
    assert page.snapshot is not None and page.page.has_next
    ttl = await services.redis.ttl(services.ranker.snapshots.key(viewer, page.snapshot))
    assert 0 < ttl <= services.settings.ranked_snapshot_seconds
    await services.redis.delete(services.ranker.snapshots.key(viewer, page.snapshot))
    with pytest.raises(InvalidInput, match=EXPIRED):
        await services.ranker.at(viewer, 2, page.snapshot, 2)


async def test_past_the_window_the_feed_continues_newest_first(make_services: ServicesFactory) -> None:
    services = await make_services(ranked_window_hours=1)
    viewer, ann, bob = await users(services, "viewer", "ann", "bob")
    for a in (ann, bob):
        await services.relations.follow(viewer, a)
    now_ms = int(time.time() * 1000)
    # Older than the window: never candidates, shown after them in LATEST order.
    old = [make_id(now_ms - (5 + i) * 3_600_000, i) for i in range(6)]
    for i, post_id in enumerate(old):
        await services.pool.execute(
            "INSERT INTO posts (author_id, id, text) VALUES ($1, $2, 'old')", (ann, bob)[i % 2], post_id
        )
    fresh = [await services.posts.create((ann, bob)[i % 2], f"fresh {i}") for i in range(5)]
    await FanoutWorker(services).drain()
    ids, pages = await walk(services, viewer, 3)
    assert sorted(ids[:5]) == sorted(p.id for p in fresh)
    assert ids[5:] == sorted(old, reverse=True)
    scored = [s for p in pages for s in p.scores]
    assert all(s is not None for s in scored[:5]) and all(s is None for s in scored[5:])


async def test_a_viewer_with_nothing_recent_gets_latest_order(services: Services) -> None:
    viewer, ann = await users(services, "viewer", "ann")
    await services.relations.follow(viewer, ann)
    ids, pages = await walk(services, viewer, 5)
    assert ids == [] and not pages[0].page.has_next


async def test_an_installed_model_ranks_instead_of_the_heuristic(
    make_services: ServicesFactory, tmp_path: Path
) -> None:
    # A model that likes old posts: the opposite of the heuristic's recency.
    n = len(NAMES)
    coef = np.zeros(n)
    coef[NAMES.index("age_hours")] = 1.0
    path = tmp_path / "model.json"
    write_model(path, Model("oldest-first", np.zeros(n), np.ones(n), coef, 0.0))
    services = await make_services(rank_model=path)
    viewer, ann = await users(services, "viewer", "ann")
    await services.relations.follow(viewer, ann)
    # A minute apart: posts made within one millisecond have the same age, and tie.
    now_ms = int(time.time() * 1000)
    posts = [make_id(now_ms - (4 - i) * 60_000, i) for i in range(4)]
    for post_id in posts:
        await services.pool.execute(
            "INSERT INTO posts (author_id, id, text) VALUES ($1, $2, 'x')", ann, post_id
        )
    assert services.ranker.scorer.version == "oldest-first"
    page = await services.ranker.first(viewer, 4)
    assert page.page.post_ids == posts


async def test_the_same_ranking_is_the_same_snapshot(services: Services) -> None:
    viewer, ann = await users(services, "viewer", "ann")
    await services.relations.follow(viewer, ann)
    for i in range(3):
        await services.posts.create(ann, f"{i}")
    now = time.time()
    services.ranker.clock = lambda: now
    a, b = await services.ranker.first(viewer, 2), await services.ranker.first(viewer, 2)
    assert a.snapshot == b.snapshot and a.scores == b.scores
    services.ranker.clock = lambda: now + 3600  # an hour on, scores decay: another snapshot
    assert (await services.ranker.first(viewer, 2)).snapshot != a.snapshot
