"""4. Post-to-visible lag: from createPost until sampled followers' timelines hold the post."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from homefeed.bench.errors import SEED_HINT, BenchError
from homefeed.bench.stats import Stat
from homefeed.bench.writes.base import BenchBase
from homefeed.workers.fanout_worker import FanoutWorker


class VisibleLag(BenchBase):
    """A worker in the background while an author with ~10k followers posts."""

    async def _lag(self) -> dict[str, Any]:
        threshold = self.s.settings.celebrity_threshold
        row = await self.pool.fetchrow(
            """SELECT id, follower_count FROM users
               WHERE fanout_mode = 0 AND follower_count < $1 AND follower_count > 0
               ORDER BY abs(follower_count - $2), id LIMIT 1""",
            min(threshold, 2.0**62),
            self.opt.lag_followers,
        )
        if row is None:
            raise BenchError(f"no pushed author found for the lag measurement: {SEED_HINT}")
        author = row["id"]
        followers = await self._active_followers(author)
        self.log(
            f"post-to-visible lag: author with {row['follower_count']:,} followers"
            f" ({len(followers):,} active) ..."
        )
        await self._warm_up([author, *followers])
        # Fan-out writes in follower-id order: the highest id is written last.
        sample = sorted(set(self.rng.sample(followers, min(8, len(followers))) + followers[-1:]))
        worker = FanoutWorker(self.s)
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run_forever(stop))
        lags: list[float] = []
        timeouts = 0
        try:
            await asyncio.sleep(0.1)
            for i in range(max(30, self.opt.posts)):
                # A random gap, so posts land at random phases of the worker's idle polling.
                await asyncio.sleep(self.rng.uniform(0.0, 0.05))
                began = time.perf_counter()
                post_id = await self._create_post(author, f"bench lag {i}")
                if await self._poll(sample, post_id, began + 10.0):
                    lags.append(time.perf_counter() - began)
                else:
                    timeouts += 1
        finally:
            stop.set()
            await task
        if timeouts:
            self.notes.append(f"visible lag: {timeouts} posts not visible within 10 s")
        result = {"lag": Stat.of(lags), "followers": row["follower_count"], "active": len(followers)}
        self.log(f"  lag p50 {result['lag'].p50:.1f} ms, p99 {result['lag'].p99:.1f} ms")
        return result
