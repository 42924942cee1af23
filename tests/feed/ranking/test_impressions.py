"""Impression logging: sampled, bounded, written off the request path with the ranker's features."""

from __future__ import annotations

import random
import time
from typing import Any

import pytest

from homefeed.feed.metrics import IMPRESSIONS
from homefeed.feed.ranking import impressions
from homefeed.feed.ranking.features import LIKERS_PER_FOLLOWEE, NAMES, read_features, read_impressions
from homefeed.feed.ranking.impressions import LATEST, RANKED, ImpressionLog
from homefeed.feed.services import Services
from homefeed.schema.node import expect_global_id
from tests.api import Api
from tests.conftest import ServicesFactory


async def world(services: Services) -> tuple[int, list[int]]:
    viewer = (await services.users.create("viewer", "v", "x")).id
    ann = (await services.users.create("ann", "a", "x")).id
    await services.relations.follow(viewer, ann)
    posts = [(await services.posts.create(ann, f"{i}")).id for i in range(6)]
    return viewer, posts


async def test_a_logged_page_is_written_with_positions_order_and_features(services: Services) -> None:
    viewer, posts = await world(services)
    log = ImpressionLog(services.pool, 100, 1000, flush_every=3600)
    assert log.record(viewer, RANKED, posts[:3], [5, 7, 8])
    assert log.record(viewer, LATEST, posts[3:])
    # Deleted after it was shown: it was still an impression.
    author = await services.pool.fetchval("SELECT author_id FROM posts WHERE id = $1", posts[5])
    await services.posts.delete(author, posts[5])
    assert await log.flush() == 6
    rows = await services.pool.fetch(
        "SELECT post_id, position, feed_order, features FROM impressions ORDER BY feed_order DESC, position"
    )
    assert [(r["post_id"], r["position"], r["feed_order"]) for r in rows] == [
        (posts[0], 5, RANKED),
        (posts[1], 7, RANKED),
        (posts[2], 8, RANKED),
        (posts[3], 0, LATEST),
        (posts[4], 1, LATEST),
        (posts[5], 2, LATEST),
    ]
    assert all(len(r["features"]) == len(NAMES) for r in rows)
    await log.close()


async def test_sampling_and_the_queue_bound_drop_pages_never_wait(services: Services) -> None:
    viewer, posts = await world(services)
    none = ImpressionLog(services.pool, 0, 1000)
    assert not any(none.record(viewer, LATEST, posts) for _ in range(50))
    some = ImpressionLog(services.pool, 30, 10_000, rng=random.Random(7), flush_every=3600)
    logged = sum(some.record(viewer, LATEST, posts[:1]) for _ in range(1000))
    assert 200 < logged < 400
    bounded = ImpressionLog(services.pool, 100, 10, flush_every=3600)
    dropped = IMPRESSIONS.labels("dropped")._value.get()
    assert bounded.record(viewer, LATEST, posts)  # 6 queued
    assert not bounded.record(viewer, LATEST, posts)  # 12 > 10: dropped
    assert bounded.queued == 6
    assert IMPRESSIONS.labels("dropped")._value.get() == dropped + 6
    for log in (none, some, bounded):
        await log.close()


async def test_a_failed_write_is_counted_and_dropped_not_raised(services: Services) -> None:
    viewer, posts = await world(services)
    log = ImpressionLog(services.pool, 100, 1000, flush_every=3600)
    log.record(viewer, LATEST, posts)
    await services.pool.execute("ALTER TABLE impressions RENAME TO impressions_away")
    failed = IMPRESSIONS.labels("failed")._value.get()
    assert await log.flush() == 0
    assert IMPRESSIONS.labels("failed")._value.get() == failed + len(posts)
    await services.pool.execute("ALTER TABLE impressions_away RENAME TO impressions")
    log.record(viewer, LATEST, posts)
    assert await log.flush() == len(posts)
    await log.close()


async def test_served_pages_are_logged_in_the_background(make_services: ServicesFactory) -> None:
    services = await make_services(impression_sample_percent=100)
    async with Api.running(services) as api:
        viewer, ann = [await api.sign_up(h) for h in ("viewer", "ann")]
        (await api.act(viewer, "follow", ann)).ok()
        for i in range(4):
            await api.post(ann, f"{i}")
        (await api.feed(viewer, 3)).ok()
        query = "query { homeFeed(first: 3, order: RANKED) { edges { node { id } } } }"
        (await api.gql(query, {}, token=viewer.token)).ok()
        await services.impressions.flush()
        orders = await services.pool.fetch(
            "SELECT feed_order, count(*) AS n FROM impressions GROUP BY 1 ORDER BY 1"
        )
        assert [(r["feed_order"], r["n"]) for r in orders] == [(LATEST, 3), (RANKED, 3)]


async def test_a_ranked_first_page_logs_the_features_it_was_ranked_with(
    make_services: ServicesFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    services = await make_services(impression_sample_percent=100)
    async with Api.running(services) as api:
        viewer, ann, bob = [await api.sign_up(h) for h in ("viewer", "ann", "bob")]
        for who in (ann, bob):
            (await api.act(viewer, "follow", who)).ok()
        posts = [await api.post(who, f"{who.handle} {i}") for i in range(3) for who in (ann, bob)]
        like = "mutation($p: ID!) { likePost(id: $p) { id } }"
        for who in (viewer, bob):
            (await api.gql(like, {"p": posts[0]}, token=who.token)).ok()
        query = "query { homeFeed(first: 4, order: RANKED) { edges { node { id } } } }"
        # The page's features come from the ranking: writing its impressions reads none again.
        reads: list[int] = []
        real = read_impressions

        async def counting(*args: Any) -> Any:
            reads.append(1)
            return await real(*args)

        monkeypatch.setattr(impressions, "read_impressions", counting)
        edges = (await api.gql(query, {}, token=viewer.token)).ok()["homeFeed"]["edges"]
        shown = [e["node"]["id"] for e in edges]
        assert await services.impressions.flush() == 4
        assert reads == []
        rows = await services.pool.fetch(
            "SELECT post_id, position, feed_order, features FROM impressions ORDER BY position"
        )
        assert [r["feed_order"] for r in rows] == [RANKED] * 4
        assert [r["position"] for r in rows] == [0, 1, 2, 3]
        # The same inputs the features statement gives (stored as float4; age, and velocity
        # through it, move on between the two reads).
        ids = [r["post_id"] for r in rows]
        assert ids == [expect_global_id(i, "Post") for i in shown]
        viewer_id = expect_global_id(viewer.id, "User")
        now = await read_features(services.pool, viewer_id, ids, int(time.time() * 1000))
        expected = dict(zip(now.ids.tolist(), now.matrix(viewer_id).tolist(), strict=True))
        age, velocity = NAMES.index("age_hours"), NAMES.index("log_velocity")
        for r in rows:
            logged, fresh = list(r["features"]), expected[r["post_id"]]
            steady = [k for k in range(len(NAMES)) if k not in (age, velocity)]
            assert [logged[k] for k in steady] == pytest.approx([fresh[k] for k in steady], rel=1e-6)
            assert fresh[age] >= logged[age] - 1e-6


async def engaged(services: Services) -> tuple[list[int], list[int]]:
    """Two viewers, one following three authors, one following one; likes both ways (affinity,
    the authors' rates), and one post liked by more than LIKERS_PER_FOLLOWEE times the second
    viewer's followees, so social proof is counted from both sides."""
    v1, v2, a1, a2, a3 = [(await services.users.create(h, h, "x")).id for h in ("v1", "v2", "a1", "a2", "a3")]
    for a in (a1, a2, a3):
        await services.relations.follow(v1, a)
    await services.relations.follow(v2, a2)
    posts = [(await services.posts.create((a1, a2, a3, v1)[i % 4], f"p{i}")).id for i in range(12)]
    rng = random.Random(3)
    for p in posts:
        for liker in rng.sample([v1, v2, a1, a2, a3], rng.randrange(0, 4)):
            await services.likes.like(liker, p)
    crowd = [(await services.users.create(f"c{i}", "c", "x")).id for i in range(LIKERS_PER_FOLLOWEE)]
    for liker in [*crowd, a2]:
        await services.likes.like(liker, posts[0])
    author = await services.pool.fetchval("SELECT author_id FROM posts WHERE id = $1", posts[5])
    await services.posts.delete(author, posts[5])
    return [v1, v2], posts


def _counted_statements(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the impression log's features statements, by the ids each one reads."""
    calls: list[int] = []
    real = read_impressions

    async def counting(db: Any, viewers: Any, ids: Any, shown: Any) -> Any:
        calls.append(len(ids))
        return await real(db, viewers, ids, shown)

    monkeypatch.setattr(impressions, "read_impressions", counting)
    return calls


async def test_a_flush_reads_every_page_in_one_statement_as_each_page_alone_would(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    (v1, v2), posts = await engaged(services)
    now = int(time.time() * 1000)
    # Likes of posts[0]'s author 40 days ago: in the affinity window of a page shown 35 days ago
    # only, so each page's own day must decide what counts.
    month = 35 * 86_400_000
    author = await services.pool.fetchval("SELECT author_id FROM posts WHERE id = $1", posts[0])
    await services.pool.execute(
        "INSERT INTO affinity (user_id, author_id, day, likes) VALUES ($1, $2, current_date - 40, 5)",
        v1,
        author,
    )
    gone = posts[-1] + 1_000_000  # no such post: left out of the page's rows
    pages = [
        (v1, posts[:6], now),
        (v2, posts[:6], now),
        (v1, [posts[0], gone, posts[7], posts[0]], now - month),
        (v2, posts[6:], now - 3_600_000),
        (v1, posts[6:], now),
    ]
    calls = _counted_statements(monkeypatch)
    log = ImpressionLog(services.pool, 100, 1000, flush_every=3600)
    for viewer, ids, _ in pages:
        assert log.record(viewer, LATEST, ids)
    for page, (_, _, shown) in zip(log._pages, pages, strict=True):
        object.__setattr__(page, "shown_ms", shown)
    rows = await log._rows(list(log._pages))
    assert calls == [sum(len(ids) for _, ids, _ in pages)]
    expected = []
    for viewer, ids, shown in pages:
        alone = await read_features(services.pool, viewer, ids, shown)
        by_id = dict(zip(alone.ids.tolist(), alone.matrix(viewer).tolist(), strict=True))
        expected += [(viewer, p, place, by_id[p]) for place, p in enumerate(ids) if p in by_id]
    assert [(r[0], r[1], r[2], r[5]) for r in rows] == expected
    # Both sides of social proof and the affinity window made a difference somewhere.
    social, affinity = NAMES.index("log_social"), NAMES.index("log_affinity")
    assert any(x[social] > 0 for *_, x in expected[6:12])  # v2, the popular post counted per followee
    assert expected[12][:2] == expected[0][:2] == (v1, posts[0])
    assert expected[12][3][affinity] > expected[0][3][affinity]
    await log.close()


async def test_nothing_queued_is_lost_when_a_flush_takes_several_statements(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    (v1, v2), posts = await engaged(services)
    monkeypatch.setattr(impressions, "READ_ROWS", 10)
    calls = _counted_statements(monkeypatch)
    log = ImpressionLog(services.pool, 100, 60, flush_every=3600)
    queued = 0
    for k in range(19):
        ids = posts[k % 4 : k % 4 + 3]
        assert log.record((v1, v2)[k % 2], LATEST, ids)
        queued += len(ids)
    # A ranked page brings its features: read by no statement, written all the same.
    assert log.record(v1, RANKED, posts[:2], features=lambda: [[0.5] * len(NAMES)] * 2)
    queued += 2
    assert queued == log.queued == 59  # at the bound of 60: one more page would be dropped
    assert not log.record(v2, LATEST, posts[:3])
    written = await log.flush()
    # Every post of a page exists but the one deleted (posts[5]: still a row, so written).
    assert written == queued
    assert await services.pool.fetchval("SELECT count(*) FROM impressions") == queued
    assert calls == [9, 9, 9, 9, 9, 9, 3]  # at most READ_ROWS each, whole pages
    await log.close()
