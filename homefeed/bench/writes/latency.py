"""2. createPost latency: an author with a handful of followers against the most followed one."""

from __future__ import annotations

import time
from typing import Any

from homefeed.bench.stats import Stat
from homefeed.bench.writes.base import BenchBase


class PostLatency(BenchBase):
    """The write alone: one INSERT of post + outbox row, whatever the follower count."""

    async def _post_latency(self) -> dict[str, Any]:
        self.log("createPost latency: ordinary vs most-followed author ...")
        celeb = await self.pool.fetchrow(
            "SELECT id, follower_count FROM users ORDER BY follower_count DESC, id LIMIT 1"
        )
        ordinary = await self.pool.fetchrow(
            """SELECT id, follower_count FROM users WHERE follower_count BETWEEN 1 AND 10
               ORDER BY follower_count, id LIMIT 1"""
        ) or await self.pool.fetchrow(
            "SELECT id, follower_count FROM users ORDER BY follower_count, id LIMIT 1"
        )
        assert celeb is not None and ordinary is not None
        samples = max(100, self.opt.posts * 3)
        times: dict[int, list[float]] = {celeb["id"]: [], ordinary["id"]: []}
        made: list[tuple[int, int]] = []
        for i in range(samples + 5):
            # Interleaved, so drift (autovacuum, checkpoints) hits both alike; 5 untimed first.
            for author in (ordinary["id"], celeb["id"]) if i % 2 else (celeb["id"], ordinary["id"]):
                began = time.perf_counter()
                post = await self.s.posts.create(author, f"bench createPost {i}")
                took = time.perf_counter() - began
                made.append((author, post.id))
                if i >= 5:
                    times[author].append(took)
        self.created += made
        # These were measured for the write alone: no fan-out (the celebrity's would cost millions
        # of writes); their outbox rows go now so no worker picks them up.
        await self.pool.execute(
            "DELETE FROM outbox WHERE kind = 'post' AND subject_id = ANY($1::bigint[])", [p for _, p in made]
        )
        result = {
            "ordinary": Stat.of(times[ordinary["id"]]),
            "celebrity": Stat.of(times[celeb["id"]]),
            "ordinary_followers": ordinary["follower_count"],
            "celebrity_followers": celeb["follower_count"],
        }
        self.log(
            f"  ordinary p50 {result['ordinary'].p50:.2f} ms, celebrity p50 {result['celebrity'].p50:.2f} ms"
        )
        return result
