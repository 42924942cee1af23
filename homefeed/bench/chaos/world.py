"""The users the chaos run acts as, their tokens, and the celebrity threshold it serves with."""

from __future__ import annotations

import random
from dataclasses import dataclass

import asyncpg

from homefeed.bench.chaos.options import ChaosOptions
from homefeed.bench.errors import SEED_HINT, BenchError
from homefeed.feed.auth import Tokens


@dataclass
class World:
    """Who acts: the cast (and their tokens), the subscribers among them, the boundary author."""

    users: int
    cast: list[int]
    tokens: dict[int, str]
    subscribers: list[int]
    threshold: int
    # The author whose follower count the traffic walks back and forth across the threshold, so
    # the run also passes through pull -> draining -> push and back.
    boundary: int
    boundary_followers: int


async def choose(pool: asyncpg.Pool, options: ChaosOptions, tokens: Tokens) -> World:
    """Pick the cast at random (with the run's seed), and the threshold."""
    users: int = await pool.fetchval("SELECT count(*) FROM users")
    if users < max(options.min_users, 10):
        raise BenchError(f"the graph has {users:,} users, at least {options.min_users:,} wanted: {SEED_HINT}")
    rng = random.Random(options.seed)
    ids = [r["id"] for r in await pool.fetch("SELECT id FROM users ORDER BY id")]
    cast = sorted(rng.sample(ids, min(options.cast, len(ids))))
    top = await pool.fetch(
        "SELECT id, follower_count FROM users WHERE id = ANY($1::bigint[])"
        " ORDER BY follower_count DESC, id LIMIT 3",
        cast,
    )
    boundary, boundary_followers = top[-1]["id"], top[-1]["follower_count"]
    threshold = options.threshold if options.threshold is not None else max(2, boundary_followers)
    subscribers = rng.sample(cast, min(options.subscribers, len(cast)))
    return World(
        users=users,
        cast=cast,
        tokens={u: tokens.issue(u) for u in cast},
        subscribers=subscribers,
        threshold=threshold,
        boundary=boundary,
        boundary_followers=boundary_followers,
    )


async def cast_followers(pool: asyncpg.Pool, author: int, cast: list[int], limit: int) -> list[int]:
    """Up to `limit` of the cast who follow `author` now (and see them: no mute, no block)."""
    rows = await pool.fetch(
        """SELECT f.follower_id FROM followers f
           WHERE f.followee_id = $1 AND f.follower_id = ANY($2::bigint[])
             AND NOT EXISTS (SELECT 1 FROM mutes m WHERE m.muter_id = f.follower_id AND m.muted_id = $1)
             AND NOT EXISTS (SELECT 1 FROM blocks b WHERE (b.blocker_id, b.blocked_id) IN
                             ((f.follower_id, $1), ($1, f.follower_id)))
           LIMIT $3""",
        author,
        cast,
        limit,
    )
    return [r[0] for r in rows]
