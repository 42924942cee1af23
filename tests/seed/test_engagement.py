"""Synthetic engagement: hidden preferences drive likes written through the real path."""

from __future__ import annotations

import numpy as np

from homefeed.feed.services import Services
from homefeed.seed import SeedParams
from homefeed.seed.engagement import active_viewers, simulate
from homefeed.seed.preferences import Preferences, uniform
from homefeed.seed.run import seed


def test_preferences_are_deterministic_and_shaped_as_documented() -> None:
    ids = np.arange(1, 20_001, dtype=np.int64)
    assert np.array_equal(uniform(3, ids), uniform(3, ids))
    assert not np.array_equal(uniform(3, ids), uniform(4, ids))
    u = uniform(3, ids)
    assert u.min() >= 0 and u.max() < 1 and abs(u.mean() - 0.5) < 0.01
    prefs = Preferences(3)
    share = prefs.is_favourite(ids, ids[::-1]).mean()
    assert abs(share - prefs.favourite_share) < 0.01
    viewers, authors = np.full(4, 7, dtype=np.int64), np.array([7, 8, 8, 8], dtype=np.int64)
    p = prefs.like_probability(viewers, authors, ids[:4], np.array([0.0, 0.0, 10.0, 100.0]))
    assert p[0] == 0  # never one's own post
    # Older is less likely, other things equal (same post quality for the comparison).
    same = prefs.like_probability(viewers[:2], authors[1:3], ids[:1].repeat(2), np.array([1.0, 50.0]))
    assert same[0] > same[1]


async def test_sessions_write_impressions_and_likes_with_their_counters(services: Services) -> None:
    await seed(services.pool, SeedParams(users=120, seed=2, posts_per_user=6.0))
    viewers = await active_viewers(services, 30, seed=2)
    assert len(viewers) == 30
    report = await simulate(services, Preferences(2), viewers, rounds=2, first=10)
    assert report.ranked_pages + report.latest_pages == 60
    assert report.ranked_pages > 0 and report.latest_pages > 0
    pool = services.pool
    assert await pool.fetchval("SELECT count(*) FROM impressions") == report.impressions > 0
    likes = await pool.fetchval("SELECT count(*) FROM likes")
    assert likes == report.likes > 0
    # Every like followed an impression of the same post by the same viewer.
    unexplained = await pool.fetchval(
        """SELECT count(*) FROM likes l WHERE NOT EXISTS (
               SELECT 1 FROM impressions i
               WHERE i.viewer_id = l.user_id AND i.post_id = l.post_id AND i.shown_at <= l.created_at)"""
    )
    assert unexplained == 0
    # The write path's counters agree with the likes.
    assert await pool.fetchval("SELECT sum(likes) FROM affinity") == likes
    assert await pool.fetchval("SELECT sum(d) FROM author_recent, unnest(likes) AS d") == likes
