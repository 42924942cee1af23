"""3. Cold rebuild: a timeline rebuilt from PostgreSQL, and a whole cold home read, against a pull page."""

from __future__ import annotations

import statistics
import time
from typing import Any

from homefeed.bench.stats import Stat
from homefeed.bench.writes.base import BenchBase


class ColdRebuild(BenchBase):
    """Rebuilds for users following about 300 accounts."""

    async def _cold(self) -> dict[str, Any]:
        count = max(100, self.opt.cold_users)
        rows = await self.pool.fetch(
            """SELECT id, following_count FROM users
               ORDER BY abs(following_count - 300), id LIMIT $1""",
            count + 5,
        )
        users = [r["id"] for r in rows]
        followees = statistics.mean(r["following_count"] for r in rows)
        self.log(f"cold rebuild: {len(users)} users following ~{followees:.0f} ...")
        rebuild: list[float] = []
        home: list[float] = []
        pull: list[float] = []
        for i, user in enumerate(users):
            key = self.tl(user)
            await self.redis.delete(key)
            began = time.perf_counter()
            await self.feeds.rebuild_timeline(user)
            took_rebuild = time.perf_counter() - began
            await self.redis.delete(key)
            began = time.perf_counter()
            await self.feeds.home(user, 20, None)
            took_home = time.perf_counter() - began
            began = time.perf_counter()
            await self.feeds.pull_page(user, 20, None)
            took_pull = time.perf_counter() - began
            self.warm.add(user)
            if i >= 5:  # the first few prepare statements on the pool's connections
                rebuild.append(took_rebuild)
                home.append(took_home)
                pull.append(took_pull)
        result = {
            "rebuild": Stat.of(rebuild),
            "home": Stat.of(home),
            "pull": Stat.of(pull),
            "followees": followees,
        }
        self.log(f"  rebuild p50 {result['rebuild'].p50:.2f} ms, p99 {result['rebuild'].p99:.2f} ms")
        return result
