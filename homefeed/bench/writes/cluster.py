"""`homefeed bench fanout --redis-cluster`: fan-out writes/s on a 3-master cluster beside single servers.

In one run, on the same seeded graph and the same keys, rounds alternate between:
- the configured (single) Redis, a single Valkey server of the cluster's own binary, and that
  Valkey with one replica: the real path (createPost's outbox rows -> FanoutWorker ->
  BulkWriter) and the BulkWriter alone;
- a local cluster of 3 masters + 3 replicas started from the embedded Valkey binary: the real
  path (the worker's ClusterBulkWriter: keys grouped by master, one pipeline in flight per
  master, and a replication barrier per claimed batch), the ClusterBulkWriter alone, and
  redis-py's own ClusterPipeline doing the same APPENDs (the alternative to routing ourselves).

The cluster's ratio is given against both singles: the configured Redis may be another engine
and allocator than the cluster's nodes (Redis with jemalloc, Valkey with libc malloc here), so
only the Valkey single isolates what being a cluster costs. Each side's servers' CPU, commands
and replication bytes per write are read from their INFO around each real-path round.

Every side runs one worker in this process, so the ratio is per worker. On a machine where the
six nodes share the cores with the client, the cluster cannot be faster; the ratio says what
routing by slot, one pipeline per master and a replica per master cost. Medians of per-round
rates, as in throughput.py.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace

from redis.asyncio import Redis

from homefeed.bench.errors import SEED_HINT, BenchError
from homefeed.bench.valkey_cluster import LocalCluster
from homefeed.bench.valkey_single import LocalValkey
from homefeed.bench.writes import server_cost
from homefeed.bench.writes.base import timer
from homefeed.bench.writes.options import FanoutOptions
from homefeed.bench.writes.server_cost import Cost
from homefeed.bench.writes.throughput import Throughput
from homefeed.feed.config import Settings
from homefeed.feed.services import Services, open_services
from homefeed.feed.timeline.bulk_writer import BATCH, BulkWriter
from homefeed.feed.timeline.cluster_writer import ClusterBulkWriter
from homefeed.feed.timeline.slots import SlotMap
from homefeed.workers.fanout_worker import FanoutWorker

WARM_UP_ROUNDS = 3
# The sides, in the order each round measures them (and their servers named in the report).
REDIS, VALKEY, REPLICATED, CLUSTER = "redis", "valkey", "valkey_replica", "cluster"
# How a group of replicas' name ends (their replication offsets follow their masters': not counted).
REPLICAS = ("replica", "replicas")


@dataclass(frozen=True)
class ClusterReport:
    """Timeline writes per second, single servers and cluster, measured in the same run.

    `single_*` is the configured Redis; `valkey_*` a single server of the cluster's own engine
    (the embedded Valkey binary, same allocator), the fair side of the cluster's ratio;
    `replicated_*` that server with one replica. `server` is each group of servers' cost per
    timeline write on the real path (CPU, commands, replication bytes), medians of rounds.
    """

    single_writes_per_s: float  # real path, configured Redis
    cluster_writes_per_s: float  # real path, 3-master cluster
    single_bulkwriter_writes_per_s: float
    cluster_bulkwriter_writes_per_s: float
    cluster_redispy_writes_per_s: float  # redis-py ClusterPipeline, APPEND per key
    masters: int
    writes_per_round: int
    rounds: int
    valkey_writes_per_s: float = 0.0  # real path, embedded Valkey single
    valkey_bulkwriter_writes_per_s: float = 0.0
    replicated_writes_per_s: float = 0.0  # real path, embedded Valkey single + one replica
    replicated_bulkwriter_writes_per_s: float = 0.0
    server: dict[str, Cost] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    @property
    def ratio(self) -> float:
        """Cluster over the configured Redis, real path, one worker each."""
        return self.cluster_writes_per_s / self.single_writes_per_s

    @property
    def valkey_ratio(self) -> float:
        """Cluster over a single server of the same engine (the embedded Valkey), real path."""
        return self.cluster_writes_per_s / self.valkey_writes_per_s

    def lines(self) -> list[str]:
        per_master = self.cluster_bulkwriter_writes_per_s / self.masters
        alone = self.cluster_bulkwriter_writes_per_s
        return [
            f"fan-out on a {self.masters}-master cluster beside single servers"
            f" ({self.rounds} rounds of {self.writes_per_round:,} timeline writes):",
            f"  real path (outbox -> worker), 1 worker: cluster {self.cluster_writes_per_s:,.0f}/s",
            f"    over Valkey single (same engine) {self.valkey_writes_per_s:,.0f}/s:"
            f" ratio {self.valkey_ratio:.2f}",
            f"    over the configured Redis {self.single_writes_per_s:,.0f}/s: ratio {self.ratio:.2f}",
            f"    (Valkey single with one replica: {self.replicated_writes_per_s:,.0f}/s)",
            f"  writer alone: ClusterBulkWriter {alone:,.0f}/s; BulkWriter on Valkey"
            f" {self.valkey_bulkwriter_writes_per_s:,.0f}/s"
            f" ({alone / self.valkey_bulkwriter_writes_per_s:.2f}), on Valkey + replica"
            f" {self.replicated_bulkwriter_writes_per_s:,.0f}/s, on the configured Redis"
            f" {self.single_bulkwriter_writes_per_s:,.0f}/s"
            f" ({alone / self.single_bulkwriter_writes_per_s:.2f}); redis-py ClusterPipeline"
            f" {self.cluster_redispy_writes_per_s:,.0f}/s"
            f" ({self.cluster_redispy_writes_per_s / self.single_bulkwriter_writes_per_s:.2f})",
            "  server cost per timeline write, real path (CPU us, commands, replication bytes):",
            *(
                f"    {name:<24} {c.cpu_us:5.2f} us  {c.commands:5.3f} commands  {c.repl_bytes:6.1f} B"
                for name, c in self.server.items()
            ),
            f"  each master took {per_master:,.0f}/s of the writer-alone rate: with W workers and M"
            " masters, writes/s = min(W x a worker's rate, M x a master's), so adding masters raises"
            " the server-side ceiling linearly once the workers' cores are not the limit",
            *(f"note: {note}" for note in self.notes),
        ]


@dataclass
class _Servers:
    """The server processes behind one side, in named groups (masters, replicas), for their costs."""

    groups: dict[str, list[Redis]]

    async def samples(self) -> dict[str, list[server_cost.Sample]]:
        return {name: await server_cost.samples(clients) for name, clients in self.groups.items()}

    async def close(self) -> None:
        for clients in self.groups.values():
            for client in clients:
                await client.aclose()


async def run(
    settings: Settings, options: FanoutOptions, log: Callable[[str], None] = print
) -> ClusterReport:
    """Start a local cluster and Valkey singles, measure every side in alternating rounds."""
    assert settings.database_url and settings.redis_url
    # A write bench: the warm-up's rebuilds must not give up after the read path's short deadline
    # when the shared machine is busy.
    bench_settings = settings.with_(
        redis_prefix=f"{settings.redis_prefix}-bench", redis_read_timeout_ms=10_000
    )
    log("starting a local Valkey cluster (3 masters, 3 replicas) and two Valkey singles ...")
    cluster = LocalCluster()
    valkey, replicated = LocalValkey(), LocalValkey(replicas=1)
    started: list[LocalCluster | LocalValkey] = []
    services: list[Services] = []
    servers: list[_Servers] = []
    benches: list[_Side] = []
    try:
        for owned in (cluster, valkey, replicated):
            started.append(owned)
            await asyncio.to_thread(owned.start)
        masters = {n.port for n in cluster.masters()}
        servers = [
            _Servers({REDIS: [Redis.from_url(settings.redis_url)]}),
            _Servers({VALKEY: [Redis.from_url(valkey.url)]}),
            _Servers(
                {
                    f"{REPLICATED} master": [Redis.from_url(replicated.urls[0])],
                    f"{REPLICATED} replica": [Redis.from_url(u) for u in replicated.urls[1:]],
                }
            ),
            _Servers(
                {
                    f"{CLUSTER} masters": [_node(n.port) for n in cluster.nodes if n.port in masters],
                    f"{CLUSTER} replicas": [_node(n.port) for n in cluster.nodes if n.port not in masters],
                }
            ),
        ]
        for url in (settings.redis_url, valkey.url, replicated.url, cluster.url):
            services.append(await open_services(bench_settings.with_(redis_url=url)))
        benches = [_Side(s, options, log) for s in services]
        report = await _measure(benches, servers, options, log)
    finally:
        for bench in benches:
            await bench.cleanup()
        for opened in services:
            await opened.close()
        for group in servers:
            await group.close()
        for owned in started:
            await asyncio.to_thread(owned.stop)
    if options.json_path is not None:
        doc = {**asdict(report), "ratio": report.ratio, "valkey_ratio": report.valkey_ratio}
        options.json_path.write_text(json.dumps(doc, indent=2) + "\n")
    return report


def _node(port: int) -> Redis:
    return Redis(host="127.0.0.1", port=port)


class _Side(Throughput):
    """One Redis (single or cluster) under the bench's prefix."""


async def _measure(
    sides: Sequence[_Side], servers: Sequence[_Servers], options: FanoutOptions, log: Callable[[str], None]
) -> ClusterReport:
    first, clustered = sides[0], sides[-1]
    await first._check_graph(own_connections=sum(side.pool.get_size() for side in sides[1:]))
    authors = await _authors(first, options)
    users = sorted({u for a, f in authors for u in (a, *f)})
    ids = [u for a, f in authors for u in (a, *f)]
    keys = [first.tl(u) for u in ids]
    log(f"  {len(authors)} authors, {len(keys):,} writes a round; warming up every side ...")
    for side in sides:
        await side._warm_up(users)
    urls = [side.s.settings.redis_url or "" for side in sides]
    writers: list[BulkWriter] = [BulkWriter(url) for url in urls[:-1]]
    writers.append(ClusterBulkWriter(SlotMap(urls[-1])))
    workers = [FanoutWorker(side.s) for side in sides]
    real: list[list[float]] = [[] for _ in sides]
    alone: list[list[float]] = [[] for _ in sides]
    costs: dict[str, list[server_cost.Cost]] = {}
    redispy: list[float] = []
    total = len(keys)
    try:
        # Untimed rounds: connections, and the first appends to the restored timelines, which cost
        # the Valkey nodes (libc malloc) up to twice their steady CPU while each string grows.
        for warm_up in range(WARM_UP_ROUNDS):
            for side, worker in zip(sides, workers, strict=True):
                for author, _ in authors:
                    await side._create_post(author, f"bench warm-up {warm_up}")
                await worker.drain()
        deadline = time.perf_counter() + options.seconds * 3
        rounds = 0
        while rounds < 3 or (time.perf_counter() < deadline and rounds < 50):
            rounds += 1
            for i, (side, worker, group) in enumerate(zip(sides, workers, servers, strict=True)):
                for author, _ in authors:
                    await side._create_post(author, f"bench cluster round {rounds}")
                before = await group.samples()
                with timer(real[i]):
                    await worker.drain()
                after = await group.samples()
                for name in group.groups:
                    costs.setdefault(name, []).append(
                        server_cost.cost(before[name], after[name], total, stream=not name.endswith(REPLICAS))
                    )
            for i, (side, writer) in enumerate(zip(sides, writers, strict=True)):
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

    def rate(times: list[float]) -> float:
        return statistics.median(total / t for t in times)

    report = ClusterReport(
        single_writes_per_s=rate(real[0]),
        cluster_writes_per_s=rate(real[3]),
        single_bulkwriter_writes_per_s=rate(alone[0]),
        cluster_bulkwriter_writes_per_s=rate(alone[3]),
        cluster_redispy_writes_per_s=rate(redispy),
        masters=len((await clustered.s.feeds.slots.masters()) if clustered.s.feeds.slots else {}),
        writes_per_round=total,
        rounds=rounds,
        valkey_writes_per_s=rate(real[1]),
        valkey_bulkwriter_writes_per_s=rate(alone[1]),
        replicated_writes_per_s=rate(real[2]),
        replicated_bulkwriter_writes_per_s=rate(alone[2]),
        server={name: server_cost.median(c) for name, c in costs.items()},
    )
    for side in sides:
        await side._check_delivered(authors)
    return replace(report, notes=tuple(n for side in sides for n in side.notes))


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
