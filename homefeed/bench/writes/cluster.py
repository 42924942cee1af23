"""`homefeed bench fanout --redis-cluster`: fan-out writes/s on a 3-master cluster beside the single server.

In one run, on the same seeded graph and the same keys, rounds alternate between:
- the configured (single) Redis: the real path (createPost's outbox rows -> FanoutWorker ->
  BulkWriter) and the BulkWriter alone;
- a local cluster of 3 masters + 3 replicas started from the embedded Valkey binary: the real
  path (the worker's ClusterBulkWriter: keys grouped by master, one pipeline in flight per
  master, and a replication barrier per claimed batch), the ClusterBulkWriter alone, and
  redis-py's own ClusterPipeline doing the same APPENDs (the alternative to routing ourselves).

Both sides run one worker in this process, so the ratio is per worker. On a machine where the
six nodes share the cores with the client, the cluster cannot be faster; the ratio says what
routing by slot and one pipeline per master cost. Medians of per-round rates, as in throughput.py.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace

from homefeed.bench.errors import SEED_HINT, BenchError
from homefeed.bench.valkey_cluster import LocalCluster
from homefeed.bench.writes.base import timer
from homefeed.bench.writes.options import FanoutOptions
from homefeed.bench.writes.throughput import Throughput
from homefeed.feed.config import Settings
from homefeed.feed.services import Services, open_services
from homefeed.feed.timeline.bulk_writer import BATCH, BulkWriter
from homefeed.feed.timeline.cluster_writer import ClusterBulkWriter
from homefeed.feed.timeline.slots import SlotMap
from homefeed.workers.fanout_worker import FanoutWorker

WARM_UP_ROUNDS = 3


@dataclass(frozen=True)
class ClusterReport:
    """Timeline writes per second, single server and cluster, measured in the same run."""

    single_writes_per_s: float  # real path, single server
    cluster_writes_per_s: float  # real path, 3-master cluster
    single_bulkwriter_writes_per_s: float
    cluster_bulkwriter_writes_per_s: float
    cluster_redispy_writes_per_s: float  # redis-py ClusterPipeline, APPEND per key
    masters: int
    writes_per_round: int
    rounds: int
    notes: tuple[str, ...] = ()

    @property
    def ratio(self) -> float:
        """Cluster over single, real path, one worker each."""
        return self.cluster_writes_per_s / self.single_writes_per_s

    def lines(self) -> list[str]:
        per_master = self.cluster_bulkwriter_writes_per_s / self.masters
        return [
            f"fan-out on a {self.masters}-master cluster beside the single server"
            f" ({self.rounds} rounds of {self.writes_per_round:,} timeline writes):",
            f"  real path (outbox -> worker), 1 worker: single {self.single_writes_per_s:,.0f}/s,"
            f" cluster {self.cluster_writes_per_s:,.0f}/s: ratio {self.ratio:.2f}",
            f"  writer alone: BulkWriter {self.single_bulkwriter_writes_per_s:,.0f}/s,"
            f" ClusterBulkWriter {self.cluster_bulkwriter_writes_per_s:,.0f}/s"
            f" ({self.cluster_bulkwriter_writes_per_s / self.single_bulkwriter_writes_per_s:.2f}),"
            f" redis-py ClusterPipeline {self.cluster_redispy_writes_per_s:,.0f}/s"
            f" ({self.cluster_redispy_writes_per_s / self.single_bulkwriter_writes_per_s:.2f})",
            f"  each master took {per_master:,.0f}/s of the writer-alone rate: with W workers and M"
            " masters, writes/s = min(W x a worker's rate, M x a master's), so adding masters raises"
            " the server-side ceiling linearly once the workers' cores are not the limit",
            *(f"note: {note}" for note in self.notes),
        ]


async def run(
    settings: Settings, options: FanoutOptions, log: Callable[[str], None] = print
) -> ClusterReport:
    """Start a local cluster, measure both sides in alternating rounds, and return the figures."""
    assert settings.database_url and settings.redis_url
    # A write bench: the warm-up's rebuilds must not give up after the read path's short deadline
    # when the shared machine is busy.
    bench_settings = settings.with_(
        redis_prefix=f"{settings.redis_prefix}-bench", redis_read_timeout_ms=10_000
    )
    log("starting a local Valkey cluster (3 masters, 3 replicas) ...")
    cluster = LocalCluster()
    await asyncio.to_thread(cluster.start)
    single: Services | None = None
    clustered: Services | None = None
    benches: list[_Side] = []
    try:
        single = await open_services(bench_settings)
        clustered = await open_services(bench_settings.with_(redis_url=cluster.url))
        benches = [_Side(single, options, log), _Side(clustered, options, log)]
        report = await _measure(benches[0], benches[1], options, log)
    finally:
        for bench in benches:
            await bench.cleanup()
        for services in (single, clustered):
            if services is not None:
                await services.close()
        await asyncio.to_thread(cluster.stop)
    if options.json_path is not None:
        doc = {**asdict(report), "ratio": report.ratio}
        options.json_path.write_text(json.dumps(doc, indent=2) + "\n")
    return report


class _Side(Throughput):
    """One Redis (single or cluster) under the bench's prefix."""


async def _measure(
    single: _Side, clustered: _Side, options: FanoutOptions, log: Callable[[str], None]
) -> ClusterReport:
    await single._check_graph()
    authors = await _authors(single, options)
    users = sorted({u for a, f in authors for u in (a, *f)})
    ids = [u for a, f in authors for u in (a, *f)]
    keys = [single.tl(u) for u in ids]
    log(f"  {len(authors)} authors, {len(keys):,} writes a round; warming up both sides ...")
    await single._warm_up(users)
    await clustered._warm_up(users)
    single_url = single.s.settings.redis_url or ""
    cluster_url = clustered.s.settings.redis_url or ""
    writers: list[BulkWriter] = [BulkWriter(single_url), ClusterBulkWriter(SlotMap(cluster_url))]
    workers = [FanoutWorker(single.s), FanoutWorker(clustered.s)]
    real: list[list[float]] = [[], []]
    alone: list[list[float]] = [[], []]
    redispy: list[float] = []
    try:
        # Untimed rounds: connections, and the first appends to the restored timelines, which cost
        # the cluster's Valkey nodes (libc malloc) up to twice their steady CPU while each string grows.
        for warm_up in range(WARM_UP_ROUNDS):
            for side, worker in zip((single, clustered), workers, strict=True):
                for author, _ in authors:
                    await side._create_post(author, f"bench warm-up {warm_up}")
                await worker.drain()
        deadline = time.perf_counter() + options.seconds * 3
        rounds = 0
        while rounds < 3 or (time.perf_counter() < deadline and rounds < 50):
            rounds += 1
            for i, (side, worker) in enumerate(zip((single, clustered), workers, strict=True)):
                for author, _ in authors:
                    await side._create_post(author, f"bench cluster round {rounds}")
                with timer(real[i]):
                    await worker.drain()
            for i, (side, writer) in enumerate(zip((single, clustered), writers, strict=True)):
                member = side.members.next()
                with timer(alone[i]):
                    # Tagged by user id, as the real path's keys are (a cluster routes by the ids).
                    appended = await writer.append(
                        keys, member, ttl=side.ttl, max_bytes=side.lists.max_bytes, tags=ids
                    )
                for key in appended.overgrown:
                    await side.lists.trim(key.decode())
            member = clustered.members.next()
            with timer(redispy):
                await _redispy_appends(clustered, keys, member)
    finally:
        for writer in writers:
            await writer.close()
    total = len(keys)
    report = ClusterReport(
        single_writes_per_s=statistics.median(total / t for t in real[0]),
        cluster_writes_per_s=statistics.median(total / t for t in real[1]),
        single_bulkwriter_writes_per_s=statistics.median(total / t for t in alone[0]),
        cluster_bulkwriter_writes_per_s=statistics.median(total / t for t in alone[1]),
        cluster_redispy_writes_per_s=statistics.median(total / t for t in redispy),
        masters=len((await clustered.s.feeds.slots.masters()) if clustered.s.feeds.slots else {}),
        writes_per_round=total,
        rounds=rounds,
    )
    for side in (single, clustered):
        await side._check_delivered(authors)
    return replace(report, notes=tuple(single.notes + clustered.notes))


async def _authors(bench: _Side, options: FanoutOptions) -> list[tuple[int, list[int]]]:
    """Pushed authors with the most active followers, up to the round's number of writes."""
    rows = await bench.pool.fetch(
        """SELECT id FROM users WHERE fanout_mode = 0 AND follower_count < $1 AND follower_count > 0
           ORDER BY follower_count DESC, id LIMIT 64""",
        min(bench.s.settings.celebrity_threshold, 2.0**62),
    )
    authors: list[tuple[int, list[int]]] = []
    total = 0
    for r in rows:
        followers = await bench._active_followers(r["id"])
        authors.append((r["id"], followers))
        total += len(followers) + 1
        if total >= options.fanout_keys:
            break
    if not authors:
        raise BenchError(f"no pushed author with followers found: {SEED_HINT}")
    return authors


async def _redispy_appends(bench: _Side, keys: Sequence[bytes], member: bytes) -> None:
    """The same APPENDs through redis-py's ClusterPipeline (it groups commands by node itself)."""
    for start in range(0, len(keys), BATCH):
        async with bench.redis.pipeline(transaction=False) as pipe:
            for key in keys[start : start + BATCH]:
                pipe.append(key, member)
            await pipe.execute()
