"""The benches' celebrities: chosen by rank (or told), pulled for the run, and put back after it."""

from __future__ import annotations

import pytest
from redis.exceptions import TimeoutError as RedisTimeoutError

from homefeed.bench.celebrities import CelebrityOptions, apply, choose, restore
from homefeed.feed.services import Services
from homefeed.feed.timeline.keys import Keys
from homefeed.feed.timeline.lists import BOTTOM, ListQuery
from homefeed.seed import SeedParams
from homefeed.seed.run import seed


async def _world(services: Services, users: int = 400) -> list[int]:
    # Timelines built too, so hybrid reads merge them with the pulled lists.
    await seed(
        services.pool,
        SeedParams(users=users, seed=7, posts_per_user=6.0),
        redis=services.redis,
        settings=services.settings,
    )
    return [r["id"] for r in await services.pool.fetch("SELECT id FROM users ORDER BY id")]


async def _following(services: Services, viewers: list[int], pulled: list[int]) -> int:
    rows = await services.pool.fetch(
        """SELECT DISTINCT follower_id FROM follows
           WHERE follower_id = ANY($1::bigint[]) AND followee_id = ANY($2::bigint[])""",
        viewers,
        pulled,
    )
    return len({r[0] for r in rows} | (set(viewers) & set(pulled)))


async def test_the_top_share_is_pulled_and_the_viewer_share_is_counted(services: Services) -> None:
    users = await _world(services)
    viewers = users[::3]
    found = await choose(services.pool, viewers, CelebrityOptions(top_share=0.01, min_viewer_share=0.0))

    counts = [r[0] for r in await services.pool.fetch("SELECT follower_count FROM users ORDER BY 1 DESC")]
    # The top 1% of 400 accounts: the threshold is the 4th largest count, ties included.
    assert found.threshold == counts[3]
    assert len(found.pulled) == sum(1 for c in counts if c >= counts[3])
    assert found.viewers == len(viewers)
    assert found.viewers_following == await _following(services, viewers, found.pulled)
    assert found.pulled_followed > 0
    assert "NO PULLED" not in " ".join(found.lines())


async def test_too_few_viewers_following_widens_the_share(services: Services) -> None:
    users = await _world(services)
    narrow = await choose(services.pool, users, CelebrityOptions(top_share=0.0025, min_viewer_share=0.0))
    wide = await choose(services.pool, users, CelebrityOptions(top_share=0.0025, min_viewer_share=0.99))
    assert narrow.share < 0.99  # else the widening is not exercised
    assert wide.share >= 0.99 or len(wide.pulled) == len(users)
    assert wide.threshold < narrow.threshold and len(wide.pulled) > len(narrow.pulled)
    assert "widened" in wide.how


async def test_a_run_without_pulled_authors_says_so_loudly(services: Services) -> None:
    users = await _world(services)
    none = await choose(services.pool, users[:50], CelebrityOptions(threshold=10**9))
    assert none.pulled == [] and none.share == 0.0
    assert "NO PULLED AUTHORS" in none.lines()[0]


async def test_apply_pulls_for_the_run_and_restore_puts_back_only_what_is_safe(services: Services) -> None:
    users = await _world(services)
    found = await choose(services.pool, users, CelebrityOptions(top_share=0.01, min_viewer_share=0.0))
    assert not await services.pool.fetchval(
        "SELECT count(*) FROM users WHERE fanout_mode <> 0"
    )  # the seed's default threshold pulls nobody in a tiny world
    # Hybrid reads before: what every viewer must still see with the authors pulled.
    sample = users[::20]
    expected = {v: (await services.feeds.pull_page(v, 30, None)).post_ids for v in sample}

    await apply(services.pool, services.feeds, found)
    modes = {
        r[0]: r[1]
        for r in await services.pool.fetch("SELECT id, fanout_mode FROM users WHERE fanout_mode <> 0")
    }
    assert sorted(modes) == found.pulled and set(modes.values()) == {1}
    keys = Keys(services.settings.redis_prefix)
    for author in found.pulled:
        read = (await services.feeds._lists.read([ListQuery(keys.recent(author), None, 1000)]))[0]
        assert read.complete
        assert [i for i in read.ids if i != BOTTOM] == await services.posts.by_author(author, None, 1000)
    # The content of a feed does not depend on who is pulled.
    for viewer in sample:
        assert (await services.feeds.home(viewer, 30, None)).post_ids == expected[viewer]

    # One of them posts while pulled: pushing them back would strand the post (no drain), so they stay.
    poster, quiet = found.pulled[0], found.pulled[1:]
    await services.posts.create(poster, "posted while pulled")
    left = await restore(services.pool, services.feeds, found)
    assert left == [poster]
    after = {
        r[0]: r[1]
        for r in await services.pool.fetch("SELECT id, fanout_mode FROM users WHERE fanout_mode <> 0")
    }
    assert after == {poster: 1}
    for author in quiet:
        assert not await services.redis.exists(keys.recent(author))


async def test_an_apply_that_fails_midway_leaves_nobody_pulled(services: Services) -> None:
    users = await _world(services)
    found = await choose(services.pool, users, CelebrityOptions(top_share=0.01, min_viewer_share=0.0))
    assert found.pulled

    async def unreachable(author: int) -> None:
        raise RedisTimeoutError("Redis did not answer")

    services.feeds.rebuild_recent = unreachable  # type: ignore[method-assign]
    with pytest.raises(RedisTimeoutError):
        await apply(services.pool, services.feeds, found)
    assert not await services.pool.fetchval("SELECT count(*) FROM users WHERE fanout_mode <> 0")
