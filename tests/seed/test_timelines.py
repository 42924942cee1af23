"""The bulk fan-out of a seeded world: pulled authors marked, timelines equal to the pull reference."""

from __future__ import annotations

from homefeed.feed.timeline.keys import Keys
from homefeed.seed.generate import SeedParams
from homefeed.seed.run import seed
from tests.conftest import ServicesFactory


async def test_seeded_timelines_equal_the_pull_reference(make_services: ServicesFactory) -> None:
    """The bulk fan-out of a seeded world gives every active user the feed PostgreSQL gives."""
    services = await make_services(celebrity_threshold=40)
    params = SeedParams(users=300, seed=11, posts_per_user=4)
    report = await seed(services.pool, params, redis=services.redis, settings=services.settings)
    assert "timelines built" in report.fan_out
    pulled = await services.pool.fetchval("SELECT count(*) FROM users WHERE fanout_mode = 1")
    assert pulled == await services.pool.fetchval("SELECT count(*) FROM users WHERE follower_count >= 40")
    users = [r["id"] for r in await services.pool.fetch("SELECT id FROM users ORDER BY id LIMIT 40")]
    for user in users:
        built = await services.redis.exists(Keys(services.settings.redis_prefix).timeline(user))
        hybrid, reference = [], []
        before = None
        while True:
            page = await services.feeds.home(user, 7, before)
            hybrid += page.post_ids
            if not page.has_next:
                break
            before = page.post_ids[-1]
        before = None
        while True:
            page = await services.feeds.pull_page(user, 7, before)
            reference += page.post_ids
            if not page.has_next:
                break
            before = page.post_ids[-1]
        assert hybrid == reference, f"user {user} (timeline built: {bool(built)})"
