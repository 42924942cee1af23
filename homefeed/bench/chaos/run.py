"""The chaos run in order: own a Valkey, start the fleet, subscribe, traffic under faults, settle, check."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Callable

from homefeed.bench.chaos.checks import check, settle
from homefeed.bench.chaos.client import Client
from homefeed.bench.chaos.faults import Faults
from homefeed.bench.chaos.fleet import Fleet
from homefeed.bench.chaos.ledger import Ledger
from homefeed.bench.chaos.metrics import scrape
from homefeed.bench.chaos.options import ChaosOptions
from homefeed.bench.chaos.report import ChaosReport, build, recoveries
from homefeed.bench.chaos.subscribers import Subscribers
from homefeed.bench.chaos.traffic import Traffic
from homefeed.bench.chaos.valkey import OwnedValkey
from homefeed.bench.chaos.world import choose
from homefeed.feed import config
from homefeed.feed.auth import Tokens
from homefeed.feed.config import Settings
from homefeed.feed.store.pool import create_pool


async def run(settings: Settings, options: ChaosOptions, log: Callable[[str], None] = print) -> ChaosReport:
    """Run the chaos run against `settings`' PostgreSQL (and its own Valkey unless told otherwise)."""
    assert settings.database_url and settings.redis_url
    valkey = OwnedValkey() if options.own_valkey else None
    pool = await create_pool(settings.database_url, min_size=1, max_size=6)
    client = Client()
    fleet: Fleet | None = None
    subscribers: Subscribers | None = None
    notes: list[str] = []
    try:
        if valkey is not None:
            await valkey.start()
            settings = settings.with_(redis_url=valkey.url)
            log(f"Valkey of the run's own on {valkey.url} (started empty)")
        secret = config.jwt_secret(settings)
        world = await choose(pool, options, Tokens(secret, settings.token_ttl_days * 86_400))
        pending: int = await pool.fetchval("SELECT count(*) FROM outbox")
        if pending:
            notes.append(f"the outbox held {pending:,} jobs at the start")
        log(
            f"graph: {world.users:,} users; cast {len(world.cast):,}; threshold {world.threshold:,}"
            f" (boundary author {world.boundary}, {world.boundary_followers:,} followers)"
        )
        env = {"HOMEFEED_CELEBRITY_THRESHOLD": str(world.threshold)}
        fleet = Fleet(settings, secret, env, options.apis, options.workers, valkey)
        await fleet.start(options.server_timeout)
        log(f"{options.apis} API processes and {options.workers} workers up; subscribing ...")
        subscribers = Subscribers(world, fleet, client, options.seed)
        registered = await subscribers.start(settings.redis_url or "", settings.redis_prefix, 120)
        log(f"{registered} of {len(world.subscribers)} subscribers registered; traffic and faults ...")

        ledger = Ledger()
        until = time.monotonic() + options.minutes * 60
        traffic = Traffic(world, fleet, client, ledger, pool, options.ops_per_second, options.seed)
        faults = Faults(fleet, ledger, options.fault_every, options.server_timeout, options.seed)
        ticker = asyncio.create_task(_tick(ledger, until, log))
        await asyncio.gather(traffic.run(until), faults.run(until))
        ticker.cancel()

        log("traffic over: restarting whatever is down, waiting for the outbox to drain ...")
        began = time.monotonic()
        await fleet.heal(options.server_timeout)
        left = await settle(pool, options.settle_timeout)
        settled = time.monotonic() - began
        # Past the pulled authors' per-process cache, and the last live notices delivered.
        await asyncio.sleep(max(1.0, settings.celebrity_cache_ms / 1000 * 2))
        scraped = await _scrape(fleet, settings)
        await subscribers.stop()
        notes += fleet.exited()
        notes += [
            f"an API process failed to start and was started again: {e}" for e in fleet.failed_starts[:3]
        ]
        log("checking feeds against the pull query ...")
        findings = await check(
            pool, client, fleet, world, ledger, subscribers.seen,
            options.check_viewers, options.check_pages, options.page_size, options.seed,
        )  # fmt: skip
    finally:
        if subscribers is not None:
            await subscribers.stop()
        if fleet is not None:
            fleet.stop()
        if valkey is not None:
            valkey.stop()
        client.close()
        await pool.close()

    report = build(ledger, findings, recoveries(ledger))
    report.subscribers = len(world.subscribers)
    report.subscribers_registered = registered
    report.subscriber_duplicates = sum(s.duplicates for s in subscribers.seen)
    report.server_resyncs = sum(len(s.resyncs) for s in subscribers.seen)
    report.reconnects = sum(len(s.reconnects) for s in subscribers.seen)
    drops = Counter(d for s in subscribers.seen for d in s.drops)
    if drops:
        notes.append("subscriber connections ended: " + ", ".join(f"{k} {v}" for k, v in drops.most_common()))
    report.outbox_left = left
    report.settle_seconds = settled
    report.minutes = options.minutes
    report.graph_users = world.users
    report.cast = len(world.cast)
    report.threshold = world.threshold
    report.boundary_author = world.boundary
    report.apis, report.workers = options.apis, options.workers
    report.own_valkey = valkey is not None
    if valkey is None:
        notes.append("Valkey faults skipped: the configured Redis is not the run's to kill or flush")
    report.metrics = scraped
    report.notes = notes
    if options.json_path is not None:
        options.json_path.parent.mkdir(parents=True, exist_ok=True)
        options.json_path.write_text(json.dumps(report.to_json(), indent=2, default=str) + "\n")
    return report


async def _scrape(fleet: Fleet, settings: Settings) -> dict[str, dict[str, float]]:
    """/metrics of every running API process and worker, after the outbox drained."""
    found: dict[str, dict[str, float]] = {}
    for slot, url in fleet.urls():
        found[f"api {slot}"] = await scrape(f"{url}/metrics")
    for slot, port in enumerate(fleet.metrics_ports):
        found[f"worker {slot}"] = await scrape(f"http://{settings.host}:{port}/metrics")
    return found


async def _tick(ledger: Ledger, until: float, log: Callable[[str], None]) -> None:
    while True:
        await asyncio.sleep(30)
        log(
            f"  {max(0.0, until - time.monotonic()):5.0f} s left: {len(ledger.posts):,} posts acked,"
            f" {sum(ledger.ops.values()):,} calls, {sum(ledger.failures.values()):,} failed,"
            f" {len(ledger.faults)} faults"
        )
