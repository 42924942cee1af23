"""The fan-out bench in order: each measurement, then the report (and its JSON)."""

from __future__ import annotations

import json
import random
from collections.abc import Callable

from homefeed.bench.celebrities import Celebrities, apply, choose, restore
from homefeed.bench.writes.cold import ColdRebuild
from homefeed.bench.writes.lag import VisibleLag
from homefeed.bench.writes.latency import PostLatency
from homefeed.bench.writes.memory import Memory
from homefeed.bench.writes.options import FanoutOptions
from homefeed.bench.writes.report import FanoutReport
from homefeed.bench.writes.throughput import Throughput
from homefeed.feed.config import Settings
from homefeed.feed.services import open_services
from homefeed.feed.store.pool import create_pool


async def run(settings: Settings, options: FanoutOptions, log: Callable[[str], None] = print) -> FanoutReport:
    """Run every measurement against `settings` (both URLs set) and return the figures."""
    assert settings.database_url and settings.redis_url
    celebrities = await _choose(settings, options)
    for line in celebrities.lines():
        log(line)
    # The worker settles authors' modes by the threshold: the run's, under which its authors are pulled.
    bench_settings = settings.with_(
        redis_prefix=f"{settings.redis_prefix}-bench", celebrity_threshold=celebrities.threshold
    )
    services = await open_services(bench_settings)
    bench = _Bench(services, options, log)
    try:
        await apply(services.pool, services.feeds, celebrities)
        report = await bench.run()
        report.celebrities = celebrities
        bench.write_json(report)
        return report
    finally:
        await bench.cleanup()
        left = await restore(services.pool, services.feeds, celebrities)
        if left:
            log(f"authors {left} posted while pulled: left pulled")
        await services.close()


async def _choose(settings: Settings, options: FanoutOptions) -> Celebrities:
    """The run's celebrities, their share measured on a sample of active users."""
    assert settings.database_url
    pool = await create_pool(settings.database_url, min_size=1, max_size=2)
    try:
        active = [
            r["id"]
            for r in await pool.fetch(
                "SELECT id FROM users WHERE last_seen_at >= now() - make_interval(days => $1) ORDER BY id",
                settings.active_days,
            )
        ]
        viewers = random.Random(options.seed).sample(active, min(options.viewers, len(active)))
        return await choose(pool, viewers, options.celebrities)
    finally:
        await pool.close()


class _Bench(Throughput, PostLatency, ColdRebuild, VisibleLag, Memory):
    async def run(self) -> FanoutReport:
        users, follows = await self._check_graph()
        self.log(f"graph: {users:,} users, {follows:,} follows; timelines under '{self.keys.prefix}:'")
        memory_cmp = await self._default_zset_cost()
        thr = await self._throughput()
        post = await self._post_latency()
        cold = await self._cold()
        lag = await self._lag()
        mem = await self._memory()
        cycle = await self._cycle()
        report = FanoutReport(
            writes_per_s=thr["writes_per_s"],
            baseline_writes_per_s=thr["baseline_writes_per_s"],
            ordinary_post_ms=post["ordinary"].p50,
            celebrity_post_ms=post["celebrity"].p50,
            cold_rebuild_p99_ms=cold["rebuild"].p99,
            visible_lag_p99_ms=lag["lag"].p99,
            bytes_per_entry=cycle["bytes_per_entry"],
            bulkwriter_writes_per_s=thr["bulkwriter_writes_per_s"],
            baseline_async_writes_per_s=thr["baseline_async_writes_per_s"],
            fanout_writes=int(thr["fanout_writes"]),
            fanout_seconds=thr["fanout_seconds"],
            fanout_authors=thr["authors"],
            ordinary_post=post["ordinary"],
            celebrity_post=post["celebrity"],
            ordinary_followers=post["ordinary_followers"],
            celebrity_followers=post["celebrity_followers"],
            cold_rebuild=cold["rebuild"],
            cold_home=cold["home"],
            pull_page=cold["pull"],
            cold_followees=cold["followees"],
            visible_lag=lag["lag"],
            lag_author_followers=lag["followers"],
            lag_active_followers=lag["active"],
            memory_timelines=mem["timelines"],
            memory_entries_per_timeline=mem["entries_per_timeline"],
            memory_encoding=mem["encoding"],
            sampled_bytes_per_entry=mem["bytes_per_entry"],
            rewritten_bytes_per_entry=cycle["rewritten_bytes_per_entry"],
            memory_cycle_peak_bytes_per_entry=cycle["peak_bytes_per_entry"],
            memory_cycle_rounds=int(cycle["rounds"]),
            memory_cycle_timelines=int(cycle["timelines"]),
            default_zset_bytes_per_entry=memory_cmp[0],
            default_zset_encoding=memory_cmp[1],
            graph_users=users,
            graph_follows=follows,
            notes=self.notes,
        )
        return report

    def write_json(self, report: FanoutReport) -> None:
        if self.opt.json_path is not None:
            self.opt.json_path.parent.mkdir(parents=True, exist_ok=True)
            self.opt.json_path.write_text(json.dumps(report.to_json(), indent=2) + "\n")
