"""The live bench in order: set up, serve, connect, post, measure, clean up."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

import psutil
from redis.asyncio import Redis

from homefeed.bench.errors import BenchError
from homefeed.bench.live.api import (
    CREATE_POST,
    LEGACY_WS,
    PER_SUBSCRIBER,
    SUBSCRIPTION,
    TRANSPORT_WS,
    graphql,
)
from homefeed.bench.live.figures import Figures
from homefeed.bench.live.graph import Graph
from homefeed.bench.live.load import Plan, answer, start_load_generator
from homefeed.bench.live.options import LiveOptions
from homefeed.bench.live.report import LiveReport
from homefeed.bench.live.serving import Serving, cpu_seconds, other_homefeed_processes
from homefeed.bench.server import ServedApi
from homefeed.feed import config
from homefeed.feed.auth import Tokens
from homefeed.feed.config import Settings
from homefeed.feed.store.pool import create_pool

# Share of a post's delivery window (first to last arrival) the load generator may spend on CPU
# before its own reading, not the server, is what the lags show.
LOAD_GENERATOR_LIMIT = 0.8
# How long the server's CPU is watched with every subscriber connected and idle.
IDLE_SECONDS = 10.0


async def run(settings: Settings, options: LiveOptions, log: Callable[[str], None] = print) -> LiveReport:
    """Run the bench against `settings` (both URLs set) and return the figures."""
    assert settings.database_url and settings.redis_url
    pool = await create_pool(settings.database_url, min_size=1, max_size=2)
    redis = Redis.from_url(settings.redis_url)
    try:
        return await _Bench(settings, options, log, pool, redis).run()
    finally:
        await redis.aclose()
        await pool.close()


class _Bench(Graph, Serving, Figures):
    async def run(self) -> LiveReport:
        users = await self._check_graph()
        ordinary, celebrity = await self._authors()
        threshold = self.opt.threshold if self.opt.threshold is not None else celebrity.followers
        if not ordinary.followers < threshold <= celebrity.followers:
            raise BenchError(
                f"threshold {threshold:,} must be above the ordinary author's"
                f" {ordinary.followers:,} followers and at most the celebrity's {celebrity.followers:,}"
            )
        subs, sees, selection, both = await self._subscribers(ordinary, celebrity)
        self.log(
            f"graph: {users:,} users; ordinary author {ordinary.id} ({ordinary.followers:,} followers),"
            f" celebrity {celebrity.id} ({celebrity.followers:,}); threshold {threshold:,};"
            f" {len(subs):,} subscribers ({selection}, {both:,} follow both)"
        )
        seen_before = await self.pool.fetch(
            "SELECT id, last_seen_at FROM users WHERE id = ANY($1::bigint[])", subs
        )
        secret = config.jwt_secret(self.settings)
        tokens = Tokens(secret, self.settings.token_ttl_days * 86_400)
        sub_tokens = [tokens.issue(u) for u in subs]
        author_tokens = {"ordinary": tokens.issue(ordinary.id), "celebrity": tokens.issue(celebrity.id)}
        n_legacy = round(len(subs) * self.opt.legacy_share)
        # Legacy subscribers spread through the list, so they follow the same mix of authors.
        legacy = set(self.rng.sample(range(len(subs)), n_legacy))
        protocols = [LEGACY_WS if i in legacy else TRANSPORT_WS for i in range(len(subs))]

        self.log(f"starting the API (`homefeed serve --workers {self.opt.workers}`) ...")
        server = ServedApi(
            self.settings,
            secret,
            self.opt.workers,
            {"HOMEFEED_CELEBRITY_THRESHOLD": str(threshold), "HOMEFEED_INPROCESS_WORKER": "1"},
            worker_apart=self.opt.worker_apart,
        )
        loader: BaseProcess | None = None
        parent: Connection | None = None
        try:
            await server.wait_healthy(self.opt.server_timeout)
            await self._warm_up(server, author_tokens["ordinary"], sub_tokens[0])
            rss_before = await self._settled_rss(server)
            self.log(f"  up on {server.url}; RSS {rss_before / 2**20:.1f} MB; connecting subscribers ...")

            plan = Plan(
                server.url.replace("http://", "ws://") + "/graphql",
                sub_tokens,
                protocols,
                self.opt.connect_concurrency,
                self.opt.compression,
                PER_SUBSCRIBER if self.opt.per_subscriber else SUBSCRIPTION,
            )
            began = time.perf_counter()
            loader, parent = start_load_generator(plan, "bench-live-load")
            # Under load a server takes a while to start 10,000 subscriptions (16 a second at load 12).
            _, connected, failed = await answer(parent, max(600.0, len(subs) * 0.2))
            await self._await_registered(subs, failed, within=120)
            connect_s = time.perf_counter() - began
            self.log(f"  {connected:,} connected in {connect_s:.1f} s ({len(failed)} failed); idling ...")
            for line in failed[:5]:
                self.notes.append(line)
            rss_after = await self._settled_rss(server)
            # What idle subscriptions cost the server per second (keepalive pings, the hub's
            # periodic re-read of relationships), so CPU per post can be told apart from it.
            idle_began, idle_cpu = time.perf_counter(), server.cpu_seconds()
            await asyncio.sleep(IDLE_SECONDS)
            idle_cpu_per_s = (server.cpu_seconds() - idle_cpu) / (time.perf_counter() - idle_began)
            pubsub_server, pubsub_total = await self._pubsub_connections(server)
            self.log(
                f"  RSS {rss_after / 2**20:.1f} MB; pub/sub connections: {pubsub_server} of the server,"
                f" {pubsub_total} in all; posting ..."
            )

            kinds = ["ordinary" if i % 2 == 0 else "celebrity" for i in range(self.opt.posts)]
            # CPU spent per post, which other processes on a busy machine do not inflate (lag they do).
            cpu_before, posting_began = server.cpu_seconds(), time.perf_counter()
            worker_cpu_before = server.worker_cpu_seconds()
            loader_cpu_before = cpu_seconds(loader.pid)
            posts: list[tuple[str, str, float]] = []  # (global id, kind, unix time createPost began)
            create_s: list[float] = []
            for i, kind in enumerate(kinds):
                token = author_tokens[kind]
                began_at = time.time()
                data = await graphql(server.url, CREATE_POST, {"text": f"bench live {kind} {i}"}, token)
                create_s.append(time.time() - began_at)
                post_id = data["createPost"]["id"]
                self.created.append((post_id, token))
                posts.append((post_id, kind, began_at))
                parent.send(("await", post_id, len(sees[kind]), self.opt.post_timeout))
                _, _, got = await answer(parent, self.opt.post_timeout + 30)
                if got < len(sees[kind]):
                    self.log(f"  post {i} ({kind}): {got:,} of {len(sees[kind]):,} delivered in time")
                await asyncio.sleep(self.opt.gap)
            cpu_ms_per_post = (server.cpu_seconds() - cpu_before) * 1000 / max(1, len(posts))
            posting_s = time.perf_counter() - posting_began
            worker_cpu_ms_per_post = (
                (server.worker_cpu_seconds() - worker_cpu_before) * 1000 / max(1, len(posts))
            )
            mine = {
                os.getpid(),
                # The bench's own worker (--worker-apart) included: it is not another command.
                *(p.pid for p in server.every_process()),
                *(p.pid for p in psutil.Process().parents()),
            }
            others = other_homefeed_processes(mine)
            loader_cpu_ms_per_post = (cpu_seconds(loader.pid) - loader_cpu_before) * 1000 / max(1, len(posts))
            parent.send(("stop",))
            _, arrivals = await answer(parent, 60)
        finally:
            with contextlib.suppress(Exception):
                await self._delete_posts(server)
            if loader is not None and parent is not None and loader.is_alive():
                with contextlib.suppress(Exception):
                    parent.send(("stop",))
                loader.join(10)
                if loader.is_alive():
                    loader.kill()
            server.stop()
            await self._restore((celebrity, ordinary), seen_before)

        report = self._report(
            subs, sees, protocols, posts, arrivals, create_s, ordinary, celebrity, threshold, selection, both
        )
        report.graph_users = users
        report.server_processes = self.opt.workers
        report.pubsub_connections = pubsub_server
        report.pubsub_connections_total = pubsub_total
        report.rss_before_mb = rss_before / 2**20
        report.rss_after_mb = rss_after / 2**20
        report.rss_per_subscription_kb = (rss_after - rss_before) / 1024 / max(1, connected)
        report.connect_seconds = connect_s
        report.compression = self.opt.compression
        if others:
            self.notes.append(
                "other homefeed commands were running (a worker of theirs on this database can take the"
                " bench's fan-out jobs and publish elsewhere, and they share the CPU): " + "; ".join(others)
            )
        if report.missed:
            late = [
                f"#{i} {p['kind']} {p['delivered']}/{p['expected']}"
                for i, p in enumerate(report.per_post)
                if p["delivered"] < p["expected"]
            ]
            self.notes.append("posts not delivered to every subscriber: " + ", ".join(late))
        report.server_cpu_ms_per_post = cpu_ms_per_post
        report.worker_apart = self.opt.worker_apart
        report.fanout_worker_cpu_ms_per_post = worker_cpu_ms_per_post
        report.server_cpu_us_per_delivery = cpu_ms_per_post * 1000 * len(posts) / max(1, report.delivered)
        report.server_idle_cpu_ms_per_s = idle_cpu_per_s * 1000
        above_idle_ms = max(0.0, cpu_ms_per_post - idle_cpu_per_s * 1000 * posting_s / max(1, len(posts)))
        report.server_cpu_ms_per_post_above_idle = above_idle_ms
        report.server_cpu_us_per_delivery_above_idle = (
            above_idle_ms * 1000 * len(posts) / max(1, report.delivered)
        )
        report.load_generator_cpu_ms_per_post = loader_cpu_ms_per_post
        # The load generator reads a post's updates between its first and last arrival: its CPU per
        # post over that window (median over posts) is the share of the window it was busy.
        windows = sorted(p["max_ms"] - p["min_ms"] for p in report.per_post if p["delivered"])
        window_ms = windows[len(windows) // 2] if windows else 0.0
        report.load_generator_busy = loader_cpu_ms_per_post / window_ms if window_ms > 0 else 0.0
        report.document = "per-subscriber" if self.opt.per_subscriber else "render-once"
        if report.load_generator_busy >= LOAD_GENERATOR_LIMIT:
            self.notes.append(
                f"the load generator was the limit: it was busy {report.load_generator_busy:.0%} of the time"
                " between a post's first and last arrival, so lags include its own queueing"
            )
        report.failed_connections = len(failed)
        report.load_average = list(os.getloadavg())
        if report.load_average[0] > (os.cpu_count() or 1):
            self.notes.append(
                f"the machine was busy (load {report.load_average[0]:.1f} on {os.cpu_count()} cores):"
                " lags may be inflated by other processes"
            )
        report.notes = self.notes
        if self.opt.json_path is not None:
            self.opt.json_path.parent.mkdir(parents=True, exist_ok=True)
            self.opt.json_path.write_text(json.dumps(report.to_json(), indent=2) + "\n")
        return report
