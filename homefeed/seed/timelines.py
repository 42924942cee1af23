"""The fan-out of a bulk load: every active user's timeline, computed from the generated world.

Seeded posts have no outbox rows (replaying a million fan-out jobs would take
far longer than the load), so the timelines fan-out would have built are
computed here with numpy from the in-memory arrays and handed to Feeds, which
writes them (pipelined SETs). Authors at or above the celebrity threshold are marked pulled, exactly as
the worker would have left them.
"""

from __future__ import annotations

import asyncpg
import numpy as np

from homefeed.feed import modes
from homefeed.feed.config import Settings
from homefeed.feed.feeds import Feeds
from homefeed.feed.timeline.writes import BuiltTimeline
from homefeed.seed.generate import DAY_MS, I64, World
from homefeed.seed.progress import SeedProgress

# Users whose timelines are computed, then written, at a time.
BATCH = 500
# A timeline expires this long before its owner would count as inactive (see Feeds.timeline_ttl).
MARGIN_S = 60


async def build_timelines(
    pool: asyncpg.Pool, feeds: Feeds, world: World, settings: Settings, progress: SeedProgress
) -> int:
    """Write the timeline of every active user of `world`; returns how many were written."""
    n, size = world.users, settings.timeline_size
    pulled = world.follower_count >= settings.celebrity_threshold
    counts = np.bincount(world.post_author, minlength=n)
    ends = np.cumsum(counts)
    starts = ends - counts
    # Each author's posts, oldest first (post ids are time order; the sort is stable).
    by_author = world.post_ids[np.argsort(world.post_author, kind="stable")]
    await _mark_pulled(pool, world, np.flatnonzero(pulled), by_author, starts, counts)

    first_followee = np.searchsorted(world.follow_src, np.arange(n), side="left")
    last_followee = np.searchsorted(world.follow_src, np.arange(n), side="right")
    # Seconds each user stays active from now on, by PostgreSQL's measure.
    left_s = (world.user_last_seen_ms + settings.active_days * DAY_MS - world.now_ms) // 1000 - MARGIN_S
    active = np.flatnonzero(left_s > 0)
    progress.start("fan-out", int(active.shape[0]))
    written = 0
    for batch_start in range(0, active.shape[0], BATCH):
        batch = active[batch_start : batch_start + BATCH]
        timelines: list[BuiltTimeline] = []
        for u in batch.tolist():
            authors = np.append(world.follow_dst[first_followee[u] : last_followee[u]], u)
            authors = authors[~pulled[authors]]
            segments = [by_author[max(starts[a], ends[a] - size) : ends[a]] for a in authors.tolist()]
            ids = np.concatenate(segments) if segments else np.zeros(0, dtype=np.int64)
            if ids.shape[0] > size:
                ids = np.partition(ids, ids.shape[0] - size)[-size:]
            ids.sort()
            whole = int(counts[authors].sum()) <= size
            timelines.append(BuiltTimeline(int(world.user_ids[u]), ids, whole, int(left_s[u])))
        await feeds.write_built(timelines)
        written += int(batch.shape[0])
        progress.advance(int(batch.shape[0]))
    progress.finish()
    return written


async def _mark_pulled(
    pool: asyncpg.Pool,
    world: World,
    authors: I64,
    by_author: I64,
    starts: I64,
    counts: I64,
) -> None:
    """Celebrities are pulled from the start; a later drain would backfill all their posts."""
    if authors.shape[0] == 0:
        return
    ids = world.user_ids[authors].tolist()
    first_posts = [int(by_author[starts[a]]) if counts[a] else None for a in authors.tolist()]
    await pool.execute(
        """UPDATE users u SET fanout_mode = $3, pull_from = v.first_post
           FROM unnest($1::bigint[], $2::bigint[]) AS v(id, first_post) WHERE u.id = v.id""",
        ids,
        first_posts,
        modes.PULL,
    )
