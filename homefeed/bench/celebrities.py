"""Celebrities in every benchmark: the threshold a run serves with, and the authors it pulls.

The seeded graph's follower counts follow one power law at any size, so the most-followed
accounts are a fixed *share* of the world: a run that pulls the top 0.01% of accounts on a
100k graph pulls what a 10M graph's top 0.01% would be, and each viewer follows about as
many of them at either size. A fixed follower count would not scale: the default threshold
(100,000) pulls nobody on a 100k graph and the merge of pulled authors would go unmeasured.

`choose` finds the threshold: the follower count of the account at that rank, lowered
(more accounts pulled) until enough sampled viewers follow one; or the one the bench is told.
`apply` makes the authors at or above it pulled for the run, as the fan-out worker would
have on their next post, and builds their recent lists; `restore` puts back the authors
nothing was posted by meanwhile. A run with no pulled author says so loudly in its report.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import asyncpg

from homefeed.feed.feeds import Feeds

# Pulled by default: the most-followed 0.01% of accounts (at least one).
TOP_SHARE = 0.0001
# At least this share of the sampled viewers follows a pulled author, or more are pulled.
MIN_VIEWER_SHARE = 0.30

_AT_RANK = "SELECT follower_count FROM users ORDER BY follower_count DESC, id OFFSET $1 LIMIT 1"
# Pulled under a threshold: at or above it, and whoever is pulled already (never pushed back here).
_PULLED = "SELECT id FROM users WHERE follower_count >= $1 OR fanout_mode <> 0"
_FOLLOWING = """
SELECT count(DISTINCT v) AS viewers, count(f.followee_id) AS edges
FROM unnest($1::bigint[]) AS v
LEFT JOIN follows f ON f.follower_id = v AND f.followee_id = ANY($2::bigint[])
WHERE f.followee_id IS NOT NULL OR v = ANY($2::bigint[])
"""
# next_id(): posts from now on are pulled; the older ones are in the timelines already.
_PULL = """
UPDATE users SET fanout_mode = 1, pull_from = next_id()
WHERE follower_count >= $1 AND fanout_mode = 0
RETURNING id, pull_from
"""
# Back to push only where nothing was posted while pulled (else a drain would owe followers
# those posts: the worker does that when the author next posts, with the server's threshold).
_RESTORE = """
UPDATE users u SET fanout_mode = 0, pull_from = NULL
FROM unnest($1::bigint[], $2::bigint[]) AS v(id, pulled_from)
WHERE u.id = v.id AND u.fanout_mode = 1 AND u.pull_from = v.pulled_from
  AND NOT EXISTS (SELECT 1 FROM posts p WHERE p.author_id = v.id AND p.id >= v.pulled_from)
RETURNING u.id
"""


@dataclass(frozen=True)
class CelebrityOptions:
    """How a bench picks its celebrity threshold: told one, or a share of the accounts."""

    threshold: int | None = None  # told: pull every account with at least this many followers
    top_share: float = TOP_SHARE
    min_viewer_share: float = MIN_VIEWER_SHARE


@dataclass
class Celebrities:
    """The run's threshold and what it pulls; `changed` (id, pull_from) is what `restore` undoes."""

    threshold: int
    how: str  # how the threshold was chosen, in words
    pulled: list[int]
    viewers: int  # sampled viewers the share is of
    viewers_following: int  # of them, following a pulled author (or pulled themselves)
    pulled_followed: int  # (viewer, pulled author) pairs among them
    changed: list[tuple[int, int]] = field(default_factory=list)

    @property
    def share(self) -> float:
        return self.viewers_following / self.viewers if self.viewers else 0.0

    @property
    def per_viewer(self) -> float:
        """Pulled authors a sampled viewer follows, on average: each is one more list to merge."""
        return self.pulled_followed / self.viewers if self.viewers else 0.0

    def lines(self) -> list[str]:
        """The report's lines: loud when nothing is pulled, since then the hybrid is half-measured."""
        if not self.pulled:
            return [
                "!!! NO PULLED AUTHORS: this run measured a world without celebrities; the merge of"
                f" pulled lists was never on the path (threshold {self.threshold:,}, {self.how}) !!!"
            ]
        return [
            f"celebrities: threshold {self.threshold:,} followers ({self.how}); {len(self.pulled):,}"
            f" pulled authors; {self.share:.0%} of {self.viewers:,} sampled viewers follow one"
            f" ({self.per_viewer:.1f} each on average)"
        ]

    def to_json(self) -> dict[str, Any]:
        doc = asdict(self)
        doc.pop("changed")
        doc["pulled_authors"] = len(self.pulled)
        doc["viewer_share"] = self.share
        doc["pulled_per_viewer"] = self.per_viewer
        return doc


async def choose(pool: asyncpg.Pool, viewers: Sequence[int], options: CelebrityOptions) -> Celebrities:
    """The threshold for this run (told, or by rank), with its pulled authors and viewer share."""
    if options.threshold is not None:
        return await _measure(pool, viewers, max(1, options.threshold), "as told")
    users = int(await pool.fetchval("SELECT count(*) FROM users"))
    rank = max(1, math.ceil(users * options.top_share))
    how = f"the top {options.top_share:.2%} of accounts"
    while True:
        at = await pool.fetchval(_AT_RANK, min(rank, max(users, 1)) - 1)
        found = await _measure(pool, viewers, max(1, int(at or 0)), how)
        if found.share >= options.min_viewer_share or rank >= users or not found.pulled:
            return found
        # Too few viewers would merge a pulled list: pull twice as many accounts.
        rank *= 2
        how = (
            f"the top {rank / users:.2%} of accounts, widened from {options.top_share:.2%} until"
            f" {options.min_viewer_share:.0%} of viewers follow one"
        )


async def _measure(pool: asyncpg.Pool, viewers: Sequence[int], threshold: int, how: str) -> Celebrities:
    pulled = sorted(r["id"] for r in await pool.fetch(_PULLED, threshold))
    row = await pool.fetchrow(_FOLLOWING, list(viewers), pulled)
    assert row is not None
    return Celebrities(
        threshold=threshold,
        how=how,
        pulled=pulled,
        viewers=len(viewers),
        viewers_following=int(row["viewers"]),
        pulled_followed=int(row["edges"]),
    )


async def apply(pool: asyncpg.Pool, feeds: Feeds, celebrities: Celebrities) -> None:
    """Pull every author at or above the threshold for the run, their recent lists built now."""
    rows = await pool.fetch(_PULL, celebrities.threshold)
    celebrities.changed = [(r["id"], r["pull_from"]) for r in rows]
    changed = [a for a, _ in celebrities.changed]
    try:
        # A list left from an earlier pulled period may lack what the author posted since.
        await feeds.forget_recent(changed)
        for author in celebrities.pulled:
            await feeds.rebuild_recent(author)
    except BaseException:
        # Not left half-applied: the run will not happen, so the world goes back now.
        await restore(pool, feeds, celebrities)
        raise


async def restore(pool: asyncpg.Pool, feeds: Feeds, celebrities: Celebrities) -> list[int]:
    """Push again the authors `apply` pulled that posted nothing since; returns those left pulled."""
    if not celebrities.changed:
        return []
    ids = [a for a, _ in celebrities.changed]
    since = [p for _, p in celebrities.changed]
    back = {r["id"] for r in await pool.fetch(_RESTORE, ids, since)}
    await feeds.forget_recent(sorted(back))
    celebrities.changed = []
    return [a for a in ids if a not in back]
