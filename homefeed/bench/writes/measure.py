"""The fan-out bench in order: each measurement, then the report (and its JSON)."""

from __future__ import annotations

import json
from collections.abc import Callable

from homefeed.bench.writes.cold import ColdRebuild
from homefeed.bench.writes.lag import VisibleLag
from homefeed.bench.writes.latency import PostLatency
from homefeed.bench.writes.memory import Memory
from homefeed.bench.writes.options import FanoutOptions
from homefeed.bench.writes.report import FanoutReport
from homefeed.bench.writes.throughput import Throughput
from homefeed.feed.config import Settings
from homefeed.feed.services import open_services


async def run(settings: Settings, options: FanoutOptions, log: Callable[[str], None] = print) -> FanoutReport:
    """Run every measurement against `settings` (both URLs set) and return the figures."""
    assert settings.database_url and settings.redis_url
    bench_settings = settings.with_(redis_prefix=f"{settings.redis_prefix}-bench")
    services = await open_services(bench_settings)
    bench = _Bench(services, options, log)
    try:
        return await bench.run()
    finally:
        await bench.cleanup()
        await services.close()


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
        report = FanoutReport(
            writes_per_s=thr["writes_per_s"],
            baseline_writes_per_s=thr["baseline_writes_per_s"],
            ordinary_post_ms=post["ordinary"].p50,
            celebrity_post_ms=post["celebrity"].p50,
            cold_rebuild_p99_ms=cold["rebuild"].p99,
            visible_lag_p99_ms=lag["lag"].p99,
            bytes_per_entry=mem["bytes_per_entry"],
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
            default_zset_bytes_per_entry=memory_cmp[0],
            default_zset_encoding=memory_cmp[1],
            graph_users=users,
            graph_follows=follows,
            notes=self.notes,
        )
        if self.opt.json_path is not None:
            self.opt.json_path.parent.mkdir(parents=True, exist_ok=True)
            self.opt.json_path.write_text(json.dumps(report.to_json(), indent=2) + "\n")
        return report
