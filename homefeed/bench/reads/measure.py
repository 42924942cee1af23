"""The read bench in this process: the sample, the snapshot, the servers, and the slices in turn."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import random
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import psutil

from homefeed.bench.baseline import APP_FACTORY, SNAPSHOT_ENV
from homefeed.bench.baseline.snapshot import capture
from homefeed.bench.celebrities import apply, choose, restore
from homefeed.bench.errors import SEED_HINT, BenchError
from homefeed.bench.reads.load import STARTED, STOPPED, LoadResult, Plan, load_generator
from homefeed.bench.reads.options import FACTORIES, ORDERED, PERSISTED, VARIANTS, ReadOptions
from homefeed.bench.reads.replica import (
    REPLICA_BASES,
    SUFFIX,
    ReplicaFigures,
    ReplicaSlice,
    ReplicaWatch,
    base_of,
    reads_replicas,
    with_replica_sides,
)
from homefeed.bench.reads.report import ReadReport, VariantResult
from homefeed.bench.reads.stores import StoreCpu, postgres_seconds
from homefeed.bench.server import ServedApi
from homefeed.bench.stats import interpolated
from homefeed.feed import config
from homefeed.feed.auth import Tokens
from homefeed.feed.config import Settings
from homefeed.feed.services import Services, open_services
from homefeed.feed.store.pool import create_pool


async def run(settings: Settings, options: ReadOptions, log: Callable[[str], None] = print) -> ReadReport:
    """Run the bench against `settings` (both URLs set) and return the figures."""
    known = (*VARIANTS, *(v + SUFFIX for v in REPLICA_BASES))
    unknown = set(options.variants) - set(known)
    if unknown:
        raise BenchError(f"unknown variants {sorted(unknown)}; choose from {', '.join(known)}")
    variants = with_replica_sides(options.variants) if options.replica else tuple(options.variants)
    replica_urls = settings.database_replica_urls
    if any(reads_replicas(v) for v in variants) and not replica_urls:
        raise BenchError(
            "replica variants need HOMEFEED_DATABASE_REPLICA_URLS (streaming replicas of the database)"
        )
    # The bench's own reads and writes (sample, snapshot, pulled authors) go to the primary.
    settings = settings.with_(database_replica_urls=())
    assert settings.database_url and settings.redis_url
    load_before = list(os.getloadavg())
    pool = await create_pool(settings.database_url, min_size=1, max_size=2)
    try:
        graph_users = int(await pool.fetchval("SELECT count(*) FROM users"))
        if graph_users < options.min_users:
            raise BenchError(
                f"the graph has {graph_users:,} users, fewer than {options.min_users:,}: {SEED_HINT}"
            )
        active = [
            r["id"]
            for r in await pool.fetch(
                """SELECT id FROM users WHERE last_seen_at >= now() - make_interval(days => $1)
                   ORDER BY id""",
                settings.active_days,
            )
        ]
    finally:
        await pool.close()
    if not active:
        raise BenchError(f"no active users in the graph: {SEED_HINT}")
    viewers = random.Random(options.seed).sample(active, min(options.users, len(active)))
    secret = config.jwt_secret(settings)
    tokens = Tokens(secret, 3600)
    plan_viewers = [(v, tokens.issue(v)) for v in viewers]

    services = await open_services(settings)
    try:
        celebrities = await choose(services.pool, viewers, options.celebrities)
        for line in celebrities.lines():
            log(line)
        # The servers (and the snapshot's engine) serve with the run's threshold, its authors pulled.
        settings = settings.with_(celebrity_threshold=celebrities.threshold)
        await apply(services.pool, services.feeds, celebrities)
        try:
            with tempfile.TemporaryDirectory(prefix="homefeed-bench-read-") as tmp:
                snapshot_path = Path(tmp) / "baseline.pickle"
                log(f"reading {len(viewers):,} users' feeds once through the engine (baseline's snapshot)")
                snap = await capture(services, viewers, options.first, options.depth)
                snap.save(snapshot_path)
                results, order = await _measure(
                    settings,
                    replica_urls,
                    variants,
                    secret,
                    snapshot_path,
                    plan_viewers,
                    options,
                    services,
                    log,
                )
        finally:
            left = await restore(services.pool, services.feeds, celebrities)
            if left:
                log(f"authors {left} posted while pulled: left pulled")
    finally:
        await services.close()
    return ReadReport(
        results=results,
        connections=options.connections,
        workers=options.workers,
        graph_users=graph_users,
        sampled_users=len(viewers),
        pulled_authors=len(celebrities.pulled),
        celebrities=celebrities,
        snapshot_pages=len(snap.pages),
        load_before=load_before,
        load_after=list(os.getloadavg()),
        cores=os.cpu_count() or 1,
        order=order,
    )


async def _measure(
    settings: Settings,
    replica_urls: tuple[str, ...],
    variant_list: tuple[str, ...],
    secret: str,
    snapshot: Path,
    viewers: list[tuple[int, str]],
    options: ReadOptions,
    services: Services,
    log: Callable[[str], None],
) -> tuple[dict[str, VariantResult], list[str]]:
    """Every variant's figures, measured in turn slice by slice (see the module doc), and the order."""
    variants = list(variant_list)
    rounds = max(1, options.rounds)
    servers: dict[str, ServedApi] = {}
    slices: dict[str, list[_Slice]] = {v: [] for v in variants}
    order: list[str] = []
    assert settings.database_url
    # With replicas configured, every slice records their lag and where the blocks were read.
    watch = await ReplicaWatch.open(settings.database_url, replica_urls) if replica_urls else None
    try:
        for variant in variants:
            log(f"{variant}: starting the API (--workers {options.workers}) …")
            servers[variant] = _served(variant, settings, replica_urls, secret, snapshot, options)
        for server in servers.values():
            await server.wait_healthy(options.server_timeout)
        each = options.seconds / rounds
        log(
            f"measuring {', '.join(variants)} in turn: {rounds} slices of {each:.0f} s each"
            f" ({options.warmup:.0f} s warm-up before the first, {options.rewarm:.1f} s before the others) …"
        )
        for r in range(rounds):
            for variant in variants[r % len(variants) :] + variants[: r % len(variants)]:
                warmup = options.warmup if r == 0 else min(options.warmup, options.rewarm)
                server = servers[variant]
                stores = StoreCpu(services.pool, services.redis, server.local_addresses)
                slices[variant].append(
                    await _slice(
                        server,
                        stores,
                        viewers,
                        options,
                        warmup,
                        each,
                        base_of(variant) in PERSISTED,
                        ORDERED.get(base_of(variant), ("", "LATEST"))[1],
                        watch,
                    )
                )
                order.append(variant)
    finally:
        for server in servers.values():
            server.stop()
        if watch is not None:
            await watch.close()
    results = {v: _combine(slices[v], with_replicas=watch is not None) for v in variants}
    for variant, result in results.items():
        log(
            f"{variant}: {result.rps:,.0f} rps, p50 {result.p50_ms:.1f} ms, p99 {result.p99_ms:.1f} ms,"
            f" {result.errors} errors"
        )
    return results, order


def _served(
    variant: str,
    settings: Settings,
    replica_urls: tuple[str, ...],
    secret: str,
    snapshot: Path,
    options: ReadOptions,
) -> ServedApi:
    """The API process tree of one variant: `homefeed serve`, on the baseline's factory for it."""
    # Nothing is written during the bench: a fan-out worker would only poll the outbox.
    env = {
        "HOMEFEED_INPROCESS_WORKER": "0",
        "HOMEFEED_CELEBRITY_THRESHOLD": str(int(settings.celebrity_threshold)),
        # Only a replica side reads from replicas (the environment may name them for all).
        "HOMEFEED_DATABASE_REPLICA_URLS": ",".join(replica_urls) if reads_replicas(variant) else "",
    }
    variant = base_of(variant)
    factory = FACTORIES.get(variant)
    variant = PERSISTED.get(variant, variant)
    variant = ORDERED.get(variant, (variant, ""))[0]
    if variant == "baseline":
        env[SNAPSHOT_ENV] = str(snapshot)
        return ServedApi(settings, secret, options.workers, env, app=APP_FACTORY)
    env["HOMEFEED_FEED_STRATEGY"] = variant
    return ServedApi(settings, secret, options.workers, env, app=factory)


@dataclass
class _Slice:
    load: LoadResult
    server_cpu_s: float
    postgres_cpu_s: float
    redis_cpu_s: float
    machine_busy: float
    replicas: ReplicaSlice | None = None


async def _slice(
    server: ServedApi,
    stores: StoreCpu,
    viewers: list[tuple[int, str]],
    options: ReadOptions,
    warmup: float,
    seconds: float,
    persisted: bool,
    order: str = "LATEST",
    watch: ReplicaWatch | None = None,
) -> _Slice:
    """One load generator against one server: `warmup`, then `seconds` measured."""
    plan = Plan(
        host="127.0.0.1",
        port=server.port,
        viewers=viewers,
        connections=options.connections,
        warmup=warmup,
        seconds=seconds,
        first=options.first,
        depth=options.depth,
        seed=options.seed,
        persisted=persisted,
        order=order,
    )
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=load_generator, args=(child, plan), daemon=True)
    proc.start()
    child.close()
    # The generator's start-up (a spawned interpreter) takes a while: sample when it says.
    await _expect(parent, STARTED, warmup + 60)
    cpu0, machine0, stores0 = server.cpu_seconds(), psutil.cpu_times(), await stores.sample()
    replicas, sampling, stop = None, None, asyncio.Event()
    if watch is not None:
        replicas = ReplicaSlice()
        blocks0 = await watch.blocks()
        sampling = asyncio.ensure_future(watch.sample_until(replicas, stop))
    try:
        await _expect(parent, STOPPED, seconds + 60)
    finally:
        stop.set()
        if sampling is not None:
            await sampling
    cpu1, machine1, stores1 = server.cpu_seconds(), psutil.cpu_times(), await stores.sample()
    if watch is not None and replicas is not None:
        blocks1 = await watch.blocks()
        replicas.primary_blocks = blocks1[0] - blocks0[0]
        replicas.replica_blocks = blocks1[1] - blocks0[1]
    got = await asyncio.to_thread(_receive, parent, 60)
    proc.join(10)
    if isinstance(got, BaseException):
        raise BenchError(f"the load generator failed: {got!r}")
    assert isinstance(got, LoadResult)
    return _Slice(
        got,
        cpu1 - cpu0,
        postgres_seconds(stores0, stores1),
        stores1.redis_s - stores0.redis_s,
        _busy_share(machine0, machine1),
        replicas,
    )


def _combine(slices: Sequence[_Slice], *, with_replicas: bool = False) -> VariantResult:
    """One variant's figures over all its slices."""
    ms = [x for s in slices for x in s.load.latencies_ms]
    seconds = sum(s.load.seconds for s in slices)
    return VariantResult(
        rps=len(ms) / seconds if seconds else 0.0,
        p50_ms=interpolated(ms, 50),
        p90_ms=interpolated(ms, 90),
        p99_ms=interpolated(ms, 99),
        p99_first_ms=interpolated([x for s in slices for x in s.load.first_ms], 99),
        p99_deeper_ms=interpolated([x for s in slices for x in s.load.deeper_ms], 99),
        max_ms=max(ms) if ms else float("nan"),
        requests=len(ms),
        first_pages=sum(s.load.first_pages for s in slices),
        deeper_pages=sum(s.load.deeper_pages for s in slices),
        errors=sum(s.load.errors for s in slices),
        error_sample=[e for s in slices for e in s.load.error_sample][:5],
        seconds=seconds,
        loadgen_cpu_s=sum(s.load.cpu_s for s in slices),
        server_cpu_s=sum(s.server_cpu_s for s in slices),
        postgres_cpu_s=sum(s.postgres_cpu_s for s in slices),
        redis_cpu_s=sum(s.redis_cpu_s for s in slices),
        machine_busy=sum(s.machine_busy * s.load.seconds for s in slices) / seconds if seconds else 0.0,
        latencies_ms=ms,
        replicas=ReplicaFigures.of([s.replicas for s in slices if s.replicas is not None])
        if with_replicas
        else None,
    )


async def _expect(conn: Connection, mark: str, within: float) -> None:
    got = await asyncio.to_thread(_receive, conn, within)
    if isinstance(got, BaseException):
        raise BenchError(f"the load generator failed: {got!r}")
    if got != mark:
        raise BenchError(f"the load generator sent {got!r}, not {mark!r}")


def _receive(conn: Connection, within: float) -> object:
    if not conn.poll(within):
        raise BenchError("the load generator sent nothing back")
    return conn.recv()


def _busy_share(before: Any, after: Any) -> float:
    idle = (after.idle + getattr(after, "iowait", 0)) - (before.idle + getattr(before, "iowait", 0))
    total = sum(after) - sum(before)
    return 1 - idle / total if total > 0 else float("nan")
