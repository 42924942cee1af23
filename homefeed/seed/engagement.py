"""Synthetic engagement for a seeded world: viewers read feeds and like what they prefer.

In each round, every sampled viewer opens their home feed once, RANKED or LATEST (at random),
through the real engine. The page is logged as impressions exactly as the API logs a sampled
page (ImpressionLog, written before any like, so features never see the likes that follow),
then the viewer likes each post with the probability their hidden preferences give
(preferences.py), through the real like statement, which keeps the ranked feed's counters.
Later rounds therefore rank with the affinity the earlier rounds built.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from homefeed.feed.ids import id_ms
from homefeed.feed.ranking.impressions import LATEST, RANKED, ImpressionLog
from homefeed.feed.services import Services
from homefeed.seed.preferences import Preferences

# Seeded posts are COPYed, not made through Posts.create: their authors' recent posts per day
# (the engagement rate's denominator) are counted from the posts table (and likes already made
# from the likes), as migration 0009 does.
_AUTHOR_RECENT = "SELECT rebuild_author_recent(NULL)"
_ACTIVE = "SELECT id FROM users WHERE last_seen_at > now() - make_interval(days => $1) ORDER BY id"
_AUTHORS = "SELECT id, author_id FROM posts WHERE id = ANY($1::bigint[])"


@dataclass(frozen=True)
class EngagementReport:
    viewers: int
    rounds: int
    ranked_pages: int
    latest_pages: int
    impressions: int
    likes: int
    scorer: str
    seconds: float

    def summary(self) -> str:
        """A human-readable summary for the command line."""
        return (
            f"engagement: {self.viewers:,} viewers x {self.rounds} rounds: {self.ranked_pages:,} RANKED and "
            f"{self.latest_pages:,} LATEST pages, {self.impressions:,} impressions, {self.likes:,} likes "
            f"(ranked by {self.scorer}) in {self.seconds:.0f} s"
        )


async def active_viewers(services: Services, count: int, seed: int) -> list[int]:
    """`count` active users, drawn with the seed."""
    ids = [r["id"] for r in await services.pool.fetch(_ACTIVE, services.settings.active_days)]
    rng = random.Random(seed)
    return sorted(rng.sample(ids, min(count, len(ids))))


async def simulate(
    services: Services,
    prefs: Preferences,
    viewers: Sequence[int],
    *,
    rounds: int,
    first: int = 20,
    ranked_share: float = 0.5,
    concurrency: int = 8,
    advance: Callable[[int], None] = lambda n: None,
) -> EngagementReport:
    """Run the sessions; likes and impressions land in the database as the API would write them."""
    started = time.perf_counter()
    await services.pool.execute(_AUTHOR_RECENT)
    counts = {"ranked": 0, "latest": 0, "impressions": 0, "likes": 0}
    gate = asyncio.Semaphore(concurrency)

    async def session(viewer: int, rng: random.Random) -> None:
        async with gate:
            if rng.random() < ranked_share:
                ranked = await services.ranker.first(viewer, first)
                ids = ranked.page.post_ids
                positions = [k if p is None else p for k, p in enumerate(ranked.positions)]
                order = RANKED
            else:
                page = await services.feeds.home(viewer, first, None)
                ids, positions, order = page.post_ids, list(range(len(page.post_ids))), LATEST
            counts["ranked" if order == RANKED else "latest"] += 1
            if not ids:
                return
            log = ImpressionLog(services.pool, 100, len(ids))
            log.record(viewer, order, ids, positions)
            written = await log.flush()  # not `+= await`: that would add to a stale count
            counts["impressions"] += written
            rows = await services.pool.fetch(_AUTHORS, ids)
            post_ids = np.array([r["id"] for r in rows], dtype=np.int64)
            authors = np.array([r["author_id"] for r in rows], dtype=np.int64)
            ages = (time.time() * 1000 - np.array([id_ms(int(i)) for i in post_ids])) / 3_600_000
            chance = prefs.like_probability(np.full_like(post_ids, viewer), authors, post_ids, ages)
            already = await services.likes.liked_among(viewer, ids)
            for post_id, p in zip(post_ids.tolist(), chance.tolist(), strict=True):
                if rng.random() < p and post_id not in already:
                    await services.likes.like(viewer, post_id)
                    counts["likes"] += 1
        advance(1)

    for round_ in range(rounds):
        await asyncio.gather(
            *(session(v, random.Random(prefs.seed * 1_000_003 + round_ * 7919 + v)) for v in viewers)
        )
    return EngagementReport(
        viewers=len(viewers),
        rounds=rounds,
        ranked_pages=counts["ranked"],
        latest_pages=counts["latest"],
        impressions=counts["impressions"],
        likes=counts["likes"],
        scorer=services.ranker.scorer.version,
        seconds=time.perf_counter() - started,
    )
