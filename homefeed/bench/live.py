"""`homefeed bench live`: live-update delivery lag and memory with a thousand subscribers.

What is measured, against the configured (or embedded) servers and the seeded graph:

1. The API runs as its own process (`homefeed serve`, in-process fan-out worker), with a
   celebrity threshold that makes the most-followed author pulled and leaves an author
   with ~10k followers pushed.
2. A load-generator process (never the server's) opens the subscribers over real
   websockets, most on graphql-transport-ws and a slice on the legacy graphql-ws protocol,
   each with its own token in connection_init and one `homeFeedUpdates` subscription.
   Subscribers follow both authors when the graph has enough such users.
3. Memory: the server's RSS (all its processes) before and after the subscribers are
   connected and idle, divided by their number. Redis: the pub/sub connections held by the
   server's processes while they are connected (the design wants one per process).
4. Lag: posts alternately by the two authors through the GraphQL API; for every subscriber
   that follows the author, the time from the start of createPost to the arrival of the
   ADDED update. Posts are spaced (the next waits for the previous to be delivered), so each
   lag is that of one post to a thousand sockets, not of a backlog.

The bench leaves the world as it found it: its posts are deleted through the API (which
also takes them out of timelines), the celebrity's fan-out mode is put back if the bench's
threshold changed it, and the subscribers' `last_seen_at` (which a live viewer refreshes)
is restored.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import multiprocessing
import os
import random
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import psutil
from redis.asyncio import Redis

from homefeed.bench import BenchError
from homefeed.bench.fanout import Stat
from homefeed.bench.server import ServedApi
from homefeed.feed import config
from homefeed.feed.auth import Tokens
from homefeed.feed.config import Settings
from homefeed.feed.store.pool import create_pool

SEED_HINT = "run `homefeed seed --users 100000` first"
TRANSPORT_WS = "graphql-transport-ws"
LEGACY_WS = "graphql-ws"
SUBSCRIPTION = "subscription { homeFeedUpdates { kind postId cursor post { id text } } }"
CREATE_POST = "mutation($text: String!) { createPost(text: $text) { id } }"
DELETE_POST = "mutation($id: ID!) { deletePost(id: $id) }"


@dataclass(frozen=True)
class LiveOptions:
    """Knobs of `homefeed bench live` (defaults finish in a few minutes on two cores)."""

    subscribers: int = 1000
    posts: int = 30  # alternately by the ordinary author and the celebrity
    legacy_share: float = 0.1  # fraction of subscribers on the legacy graphql-ws protocol
    ordinary_followers: int = 10_000  # the pushed author has about this many followers
    threshold: int | None = None  # the server's celebrity threshold; default: the celebrity's count
    workers: int = 1  # API processes
    connect_concurrency: int = 50  # websocket handshakes in flight at once
    compression: bool = True  # offer permessage-deflate, as browsers and most clients do
    post_timeout: float = 10.0  # how long one post may take to reach every subscriber
    gap: float = 0.2  # pause between a post's last delivery and the next post
    server_timeout: float = 90.0  # start-up budget of the API process
    min_users: int = 1_000  # smaller graphs are refused (the test passes a tiny number)
    json_path: Path | None = None
    seed: int = 0


@dataclass
class Author:
    id: int
    followers: int
    mode: int  # fan-out mode before the bench
    pull_from: int | None


@dataclass
class LiveReport:
    """Every figure of one run; the first five are the contract of `--json`."""

    subscribers: int
    pubsub_connections: int
    rss_per_subscription_kb: float
    lag_ms: dict[str, Stat]  # "ordinary", "celebrity"
    missed: int
    # Extras.
    expected: int = 0
    delivered: int = 0
    missed_by_kind: dict[str, int] = field(default_factory=dict)
    duplicates: int = 0
    resyncs: int = 0
    failed_connections: int = 0
    selection: str = ""  # "both" (every subscriber follows both authors) or "mixed"
    follow_both: int = 0
    protocols: dict[str, int] = field(default_factory=dict)
    lag_ms_by_protocol: dict[str, Stat] = field(default_factory=dict)
    create_post_ms: Stat | None = None
    compression: bool = True
    per_post: list[dict[str, Any]] = field(default_factory=list)  # kind, create_ms, lag p50/max, delivered
    posts: dict[str, int] = field(default_factory=dict)
    ordinary_author: int = 0
    ordinary_followers: int = 0
    celebrity_author: int = 0
    celebrity_followers: int = 0
    threshold: int = 0
    server_processes: int = 0  # API processes (uvicorn workers), each with its hub and fan-out worker
    pubsub_connections_total: int = 0
    server_cpu_ms_per_post: float = 0.0  # includes the gap between posts (an idle server uses ~0)
    load_generator_cpu_ms_per_post: float = 0.0
    rss_before_mb: float = 0.0
    rss_after_mb: float = 0.0
    connect_seconds: float = 0.0
    graph_users: int = 0
    load_average: list[float] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The JSON document of `--json`."""
        return asdict(self)

    def lines(self) -> list[str]:
        """The human-readable figures."""
        target = "target p99 < 1000 ms"
        out = [
            f"graph: {self.graph_users:,} users; server: {self.server_processes} API process(es),"
            f" celebrity threshold {self.threshold:,}",
            f"subscribers               {self.subscribers:>8,}"
            f"        ({', '.join(f'{n:,} {p}' for p, n in self.protocols.items())};"
            f" {self.failed_connections} failed to connect; connected in {self.connect_seconds:.1f} s;"
            f" selection: {self.selection}, {self.follow_both:,} follow both)",
            f"pubsub_connections        {self.pubsub_connections:>8}"
            f"        (held by the server's processes; {self.pubsub_connections_total} on the Redis"
            " server in all; target: one per API process)",
            f"rss_per_subscription_kb   {self.rss_per_subscription_kb:>8.1f}  KB"
            f"    (server RSS {self.rss_before_mb:.1f} MB idle -> {self.rss_after_mb:.1f} MB with"
            f" {self.subscribers:,} idle subscriptions)",
        ]
        for kind, who, followers in (
            ("ordinary", self.ordinary_author, self.ordinary_followers),
            ("celebrity", self.celebrity_author, self.celebrity_followers),
        ):
            stat = self.lag_ms.get(kind)
            if stat is None:
                continue
            mode = "pushed" if kind == "ordinary" else "pulled"
            out.append(
                f"lag_ms {kind:<10}  p50 {stat.p50:8.1f}  p99 {stat.p99:8.1f}  max {stat.max:8.1f}"
                f"   ({stat.n:,} deliveries of {self.posts.get(kind, 0)} posts by user {who},"
                f" {followers:,} followers, {mode}; {target})"
            )
        for proto, stat in self.lag_ms_by_protocol.items():
            out.append(
                f"lag_ms {proto:<20}  p50 {stat.p50:8.1f}  p99 {stat.p99:8.1f}  max {stat.max:8.1f}"
                f"   ({stat.n:,} deliveries)"
            )
        out.append(
            f"server_cpu_ms_per_post    {self.server_cpu_ms_per_post:8.1f}"
            f"        (all server processes: createPost, fan-out, {self.subscribers:,} deliveries;"
            f" load generator {self.load_generator_cpu_ms_per_post:.1f} ms; unlike the lag, not inflated by"
            " other processes)"
        )
        if self.create_post_ms is not None:
            out.append(
                f"create_post_ms            p50 {self.create_post_ms.p50:8.1f}"
                f"  p99 {self.create_post_ms.p99:8.1f}   (the HTTP round trip each lag starts with)"
            )
        out.append(
            f"missed                    {self.missed:>8,}"
            f"        (delivered {self.delivered:,} of {self.expected:,} expected"
            + "".join(f"; {k} {v:,}" for k, v in self.missed_by_kind.items())
            + f"; {self.duplicates} duplicates, {self.resyncs} RESYNCs)"
        )
        if self.load_average:
            out.append("load average at the end: " + " ".join(f"{x:.2f}" for x in self.load_average))
        out += [f"note: {n}" for n in self.notes]
        return out


# ---- the load generator (its own process) -------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """What the load generator is told: whom to connect as, and how."""

    ws_url: str
    tokens: list[str]
    protocols: list[str]
    connect_concurrency: int
    compression: bool


@dataclass
class Arrivals:
    """What the load generator hands back: when each subscriber got each ADDED."""

    added: dict[str, list[tuple[int, float]]]  # post global id -> [(subscriber index, unix time)]
    resyncs: int
    failed: list[str]
    closed_early: int


def load_generator(conn: Connection, plan: Plan) -> None:
    """Entry point of the load-generator process: connect, report, record until told to stop."""
    asyncio.run(_LoadGenerator(conn, plan).run())


class _LoadGenerator:
    def __init__(self, conn: Connection, plan: Plan) -> None:
        self.conn = conn
        self.plan = plan
        self.added: dict[str, list[tuple[int, float]]] = {}
        self.waiting: dict[str, tuple[int, asyncio.Event]] = {}
        self.resyncs = 0
        self.failed: list[str] = []
        self.closed_early = 0
        self.stopping = False

    async def run(self) -> None:
        gate = asyncio.Semaphore(self.plan.connect_concurrency)
        ready = [asyncio.get_running_loop().create_future() for _ in self.plan.tokens]
        tasks = [
            asyncio.create_task(self._subscriber(i, gate, ready[i])) for i in range(len(self.plan.tokens))
        ]
        await asyncio.gather(*ready)
        self.conn.send(("connected", len(self.plan.tokens) - len(self.failed), list(self.failed)))
        while True:
            command = await asyncio.to_thread(self.conn.recv)
            if command[0] == "await":
                _, post, expected, timeout = command
                got = await self._await(post, expected, timeout)
                self.conn.send(("seen", post, got))
            elif command[0] == "stop":
                self.stopping = True
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                self.conn.send(
                    ("arrivals", Arrivals(self.added, self.resyncs, self.failed, self.closed_early))
                )
                return

    async def _await(self, post: str, expected: int, within: float) -> int:
        if len(self.added.get(post, ())) < expected:
            event = asyncio.Event()
            self.waiting[post] = (expected, event)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), within)
            self.waiting.pop(post, None)
        return len(self.added.get(post, ()))

    def _record(self, post: str, index: int, at: float) -> None:
        got = self.added.setdefault(post, [])
        got.append((index, at))
        waiting = self.waiting.get(post)
        if waiting is not None and len(got) >= waiting[0]:
            waiting[1].set()

    async def _subscriber(self, index: int, gate: asyncio.Semaphore, ready: asyncio.Future[None]) -> None:
        # Imported here: only the load-generator process needs the client library.
        import websockets
        from websockets.typing import Subprotocol

        protocol = self.plan.protocols[index]
        legacy = protocol == LEGACY_WS
        try:
            async with gate:
                ws = await websockets.connect(
                    self.plan.ws_url,
                    subprotocols=[Subprotocol(protocol)],
                    open_timeout=120,
                    ping_interval=None,  # GraphQL clients keep alive with protocol messages
                    max_queue=None,
                    compression="deflate" if self.plan.compression else None,
                )
                await ws.send(
                    orjson.dumps(
                        {
                            "type": "connection_init",
                            "payload": {"authorization": f"Bearer {self.plan.tokens[index]}"},
                        }
                    ).decode()
                )
                while True:
                    message = orjson.loads(await asyncio.wait_for(ws.recv(), 120))
                    if message.get("type") == "connection_ack":
                        break
                    if message.get("type") not in ("ka", "ping", "pong"):
                        raise RuntimeError(f"unexpected {message!r} before connection_ack")
                start = {
                    "id": "1",
                    "type": "start" if legacy else "subscribe",
                    "payload": {"query": SUBSCRIPTION},
                }
                await ws.send(orjson.dumps(start).decode())
        except Exception as exc:
            self.failed.append(f"subscriber {index} ({protocol}): {type(exc).__name__}: {exc}")
            ready.set_result(None)
            return
        ready.set_result(None)
        try:
            async for raw in ws:
                at = time.time()
                message = orjson.loads(raw)
                kind = message.get("type")
                if kind in ("next", "data"):
                    update = (message.get("payload") or {}).get("data", {}).get("homeFeedUpdates") or {}
                    if update.get("kind") == "ADDED":
                        self._record(update["postId"], index, at)
                    elif update.get("kind") == "RESYNC":
                        self.resyncs += 1
                elif kind == "ping":
                    await ws.send('{"type":"pong"}')
                elif kind in ("error", "complete"):
                    self.failed.append(f"subscriber {index} ({protocol}): {message!r}")
                    break
        except asyncio.CancelledError:
            pass
        except Exception as exc:
            if not self.stopping:
                self.failed.append(f"subscriber {index} ({protocol}) lost: {type(exc).__name__}: {exc}")
        finally:
            if not self.stopping:
                self.closed_early += 1
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), 5)


# ---- the bench (this process) -----------------------------------------------------------------------


def _cpu_seconds(pid: int | None) -> float:
    try:
        times = psutil.Process(pid).cpu_times()
        return times.user + times.system
    except (psutil.Error, ValueError):
        return 0.0


def _other_homefeed_processes(mine: set[int]) -> list[str]:
    """Other `homefeed` commands running here: their fan-out workers share this database's outbox."""
    found = []
    for p in psutil.process_iter(["pid", "cmdline"]):
        cmd = p.info.get("cmdline") or []
        text = " ".join(cmd)
        if (
            p.info["pid"] in mine
            or "homefeed" not in text
            or not any(verb in cmd for verb in ("bench", "worker", "serve"))
        ):
            continue
        if os.path.basename(cmd[0]) in {"uv", "timeout", "time", "bash", "sh", "env"}:
            continue  # a wrapper of one listed anyway
        found.append(f"{p.info['pid']}: {' '.join(cmd[1:])[:80]}")
    return found


def _post_pk(global_id: str) -> int:
    """The post id inside a Relay global id (base64 of 'Post:<id>')."""
    return int(base64.b64decode(global_id).decode().rpartition(":")[2])


def _http(url: str, body: dict[str, Any] | None, token: str | None, timeout: float) -> tuple[int, Any]:
    """A blocking HTTP request (the bench needs no HTTP client library): status and parsed JSON."""
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = orjson.dumps(body) if body is not None else None
    request = urllib.request.Request(url, data=data, headers=headers, method="POST" if data else "GET")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, orjson.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, orjson.loads(exc.read() or b"null")


async def _graphql(url: str, query: str, variables: dict[str, Any], token: str) -> dict[str, Any]:
    status, doc = await asyncio.to_thread(
        _http, url + "/graphql", {"query": query, "variables": variables}, token, 30.0
    )
    if status != 200 or not isinstance(doc, dict) or doc.get("errors"):
        raise BenchError(f"GraphQL request failed ({status}): {doc!r}")
    data: dict[str, Any] = doc["data"]
    return data


_FOLLOWERS = """
SELECT f.follower_id FROM followers f
WHERE f.followee_id = $1 AND f.follower_id <> $1
  AND NOT EXISTS (SELECT 1 FROM mutes m WHERE m.muter_id = f.follower_id AND m.muted_id = $1)
  AND NOT EXISTS (SELECT 1 FROM blocks b WHERE b.blocker_id = f.follower_id AND b.blocked_id = $1)
  AND NOT EXISTS (SELECT 1 FROM blocks b WHERE b.blocker_id = $1 AND b.blocked_id = f.follower_id)
"""


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


class _Bench:
    def __init__(
        self,
        settings: Settings,
        options: LiveOptions,
        log: Callable[[str], None],
        pool: asyncpg.Pool,
        redis: Redis,
    ) -> None:
        self.settings = settings
        self.opt = options
        self.log = log
        self.pool = pool
        self.redis = redis
        self.rng = random.Random(options.seed)
        self.notes: list[str] = []
        self.created: list[tuple[str, str]] = []  # (global post id, author token)

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
        )
        ctx = multiprocessing.get_context("spawn")
        parent, child = ctx.Pipe()
        loader: BaseProcess | None = None
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
            )
            loader = ctx.Process(
                target=load_generator, args=(child, plan), name="bench-live-load", daemon=True
            )
            began = time.perf_counter()
            loader.start()
            _, connected, failed = await self._recv(parent, 600)
            await self._await_registered(subs, failed, within=120)
            connect_s = time.perf_counter() - began
            self.log(f"  {connected:,} connected in {connect_s:.1f} s ({len(failed)} failed); idling ...")
            for line in failed[:5]:
                self.notes.append(line)
            rss_after = await self._settled_rss(server)
            pubsub_server, pubsub_total = await self._pubsub_connections(server)
            self.log(
                f"  RSS {rss_after / 2**20:.1f} MB; pub/sub connections: {pubsub_server} of the server,"
                f" {pubsub_total} in all; posting ..."
            )

            kinds = ["ordinary" if i % 2 == 0 else "celebrity" for i in range(self.opt.posts)]
            # CPU spent per post, which other processes on a busy machine do not inflate (lag they do).
            cpu_before = server.cpu_seconds()
            loader_cpu_before = _cpu_seconds(loader.pid)
            posts: list[tuple[str, str, float]] = []  # (global id, kind, unix time createPost began)
            create_s: list[float] = []
            for i, kind in enumerate(kinds):
                token = author_tokens[kind]
                began_at = time.time()
                data = await _graphql(server.url, CREATE_POST, {"text": f"bench live {kind} {i}"}, token)
                create_s.append(time.time() - began_at)
                post_id = data["createPost"]["id"]
                self.created.append((post_id, token))
                posts.append((post_id, kind, began_at))
                parent.send(("await", post_id, len(sees[kind]), self.opt.post_timeout))
                _, _, got = await self._recv(parent, self.opt.post_timeout + 30)
                if got < len(sees[kind]):
                    self.log(f"  post {i} ({kind}): {got:,} of {len(sees[kind]):,} delivered in time")
                await asyncio.sleep(self.opt.gap)
            cpu_ms_per_post = (server.cpu_seconds() - cpu_before) * 1000 / max(1, len(posts))
            mine = {
                os.getpid(),
                *(p.pid for p in server.processes()),
                *(p.pid for p in psutil.Process().parents()),
            }
            others = _other_homefeed_processes(mine)
            loader_cpu_ms_per_post = (
                (_cpu_seconds(loader.pid) - loader_cpu_before) * 1000 / max(1, len(posts))
            )
            parent.send(("stop",))
            _, arrivals = await self._recv(parent, 60)
        finally:
            with contextlib.suppress(Exception):
                await self._delete_posts(server)
            if loader is not None and loader.is_alive():
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
        report.load_generator_cpu_ms_per_post = loader_cpu_ms_per_post
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

    # ---- set-up -------------------------------------------------------------------------------

    async def _check_graph(self) -> int:
        users: int = await self.pool.fetchval("SELECT count(*) FROM users")
        if users < max(self.opt.min_users, 3):
            raise BenchError(
                f"the graph has {users:,} users, too small to measure (at least {self.opt.min_users:,}"
                f" wanted): {SEED_HINT}"
            )
        pending: int = await self.pool.fetchval("SELECT count(*) FROM outbox")
        if pending:
            # The server's worker would work through them first (inflating the lag), or another
            # bench's worker is running against this database and would take the bench's jobs.
            raise BenchError(
                f"the outbox holds {pending:,} pending jobs: let a worker (`homefeed worker`) finish them, "
                "and run no other bench meanwhile"
            )
        return users

    async def _authors(self) -> tuple[Author, Author]:
        columns = "id, follower_count, fanout_mode, pull_from"
        top = await self.pool.fetchrow(
            f"SELECT {columns} FROM users ORDER BY follower_count DESC, id LIMIT 1"
        )
        assert top is not None
        celebrity = Author(top["id"], top["follower_count"], top["fanout_mode"], top["pull_from"])
        row = await self.pool.fetchrow(
            f"""SELECT {columns} FROM users
                WHERE id <> $1 AND fanout_mode = 0 AND follower_count > 0 AND follower_count < $2
                ORDER BY abs(follower_count - $3), id LIMIT 1""",
            celebrity.id,
            celebrity.followers,
            self.opt.ordinary_followers,
        )
        if row is None:
            raise BenchError(f"no author with fewer followers than the most followed one: {SEED_HINT}")
        ordinary = Author(row["id"], row["follower_count"], row["fanout_mode"], row["pull_from"])
        return ordinary, celebrity

    async def _subscribers(
        self, ordinary: Author, celebrity: Author
    ) -> tuple[list[int], dict[str, set[int]], str, int]:
        """Subscribers (following both authors if enough do), and who of them sees each author's posts."""
        authors = {ordinary.id, celebrity.id}
        of_ordinary = {r[0] for r in await self.pool.fetch(_FOLLOWERS, ordinary.id)} - authors
        of_celebrity = {r[0] for r in await self.pool.fetch(_FOLLOWERS, celebrity.id)} - authors
        both = sorted(of_ordinary & of_celebrity)
        n = self.opt.subscribers
        if len(both) >= n:
            chosen, selection = self.rng.sample(both, n), "both"
        else:
            # Not enough users follow both: the rest follow one or the other, alternately.
            only_o = self.rng.sample(sorted(of_ordinary - of_celebrity), len(of_ordinary - of_celebrity))
            only_c = self.rng.sample(sorted(of_celebrity - of_ordinary), len(of_celebrity - of_ordinary))
            chosen = list(both)
            while len(chosen) < n and (only_o or only_c):
                for pool_ in (only_o, only_c):
                    if pool_ and len(chosen) < n:
                        chosen.append(pool_.pop())
            selection = "mixed"
            if len(chosen) < n:
                self.notes.append(f"only {len(chosen):,} users follow either author; {n:,} wanted")
        sees = {
            "ordinary": {i for i, u in enumerate(chosen) if u in of_ordinary},
            "celebrity": {i for i, u in enumerate(chosen) if u in of_celebrity},
        }
        return chosen, sees, selection, len(both)

    async def _warm_up(self, server: ServedApi, token: str, sub_token: str) -> None:
        """A query and short-lived subscriptions, so lazy imports and caches do not count per socket."""
        await _graphql(server.url, "query { viewer { id } homeFeed(first: 5) { nodes { id } } }", {}, token)
        import websockets
        from websockets.typing import Subprotocol

        url = server.url.replace("http://", "ws://") + "/graphql"
        for _ in range(3):
            async with websockets.connect(url, subprotocols=[Subprotocol(TRANSPORT_WS)]) as ws:
                init = {"type": "connection_init", "payload": {"authorization": f"Bearer {sub_token}"}}
                await ws.send(orjson.dumps(init).decode())
                await asyncio.wait_for(ws.recv(), 30)
                start = {"id": "1", "type": "subscribe", "payload": {"query": SUBSCRIPTION}}
                await ws.send(orjson.dumps(start).decode())
                await asyncio.sleep(0.3)

    async def _settled_rss(self, server: ServedApi) -> int:
        """RSS once it stops moving (the server may still be finishing work)."""
        last = server.rss()
        for _ in range(10):
            await asyncio.sleep(1.0)
            now = server.rss()
            if abs(now - last) < 256 * 1024:
                return now
            last = now
        return last

    async def _await_registered(self, subs: Sequence[int], failed: Sequence[str], within: float) -> None:
        """Wait until the server's hub listens on every connected subscriber's own channel."""
        channels = [f"{self.settings.redis_prefix}:live:user:{u}" for u in subs]
        wanted = len(subs) - len(failed)
        deadline = time.monotonic() + within
        while True:
            counts = await self.redis.pubsub_numsub(*channels)
            registered = sum(1 for _, n in counts if n)
            if registered >= wanted:
                return
            if time.monotonic() > deadline:
                self.notes.append(f"only {registered:,} of {wanted:,} subscriptions registered in time")
                return
            await asyncio.sleep(0.25)

    async def _pubsub_connections(self, server: ServedApi) -> tuple[int, int]:
        """Pub/sub connections on the Redis server: those of the API's processes, and all of them."""
        clients = await self.redis.client_list(_type="pubsub")
        ours = server.local_addresses()
        return sum(1 for c in clients if c.get("addr") in ours), len(clients)

    @staticmethod
    async def _recv(conn: Connection, within: float) -> Any:
        if not await asyncio.to_thread(conn.poll, within):
            raise BenchError(f"the load generator did not answer within {within:.0f} s")
        return conn.recv()

    # ---- clean-up -----------------------------------------------------------------------------

    async def _delete_posts(self, server: ServedApi) -> None:
        """Delete the bench's posts through the API, which also takes them out of every timeline."""
        if not self.created or server.proc.poll() is not None:
            return
        for post_id, token in self.created:
            await _graphql(server.url, DELETE_POST, {"id": post_id}, token)
        ids = [_post_pk(gid) for gid, _ in self.created]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if not await self.pool.fetchval(
                "SELECT count(*) FROM outbox WHERE subject_id = ANY($1::bigint[])", ids
            ):
                return
            await asyncio.sleep(0.2)
        self.notes.append(
            "the outbox still held jobs when the server stopped; `homefeed worker` will finish them"
        )

    async def _restore(self, authors: Sequence[Author], seen: Sequence[asyncpg.Record]) -> None:
        """Drop the bench's post tombstones and put back what serving it changed."""
        ids = [_post_pk(gid) for gid, _ in self.created]
        if ids:
            await self.pool.execute("DELETE FROM outbox WHERE subject_id = ANY($1::bigint[])", ids)
            await self.pool.execute(
                "DELETE FROM posts WHERE author_id = ANY($1::bigint[]) AND id = ANY($2::bigint[])",
                [a.id for a in authors],
                ids,
            )
        for author in authors:
            row = await self.pool.fetchrow(
                "SELECT fanout_mode, pull_from FROM users WHERE id = $1", author.id
            )
            if row is None or (row["fanout_mode"], row["pull_from"]) == (author.mode, author.pull_from):
                continue
            # The bench's threshold made the author pulled. With its posts gone nothing was posted
            # while pulled, so the old mode is exact again, and other benches (which pick pushed
            # authors) find the world as it was.
            pulled_since: bool = await self.pool.fetchval(
                "SELECT EXISTS (SELECT 1 FROM posts WHERE author_id = $1 AND id >= $2)",
                author.id,
                row["pull_from"] or 0,
            )
            if pulled_since:
                self.notes.append(f"author {author.id} posted while pulled: fan-out mode left as it is")
                continue
            await self.pool.execute(
                "UPDATE users SET fanout_mode = $2, pull_from = $3 WHERE id = $1",
                author.id,
                author.mode,
                author.pull_from,
            )
        # A live viewer counts as active (fan-out reaches them); the bench's viewers were not real.
        await self.pool.executemany(
            "UPDATE users SET last_seen_at = $2 WHERE id = $1", [(r["id"], r["last_seen_at"]) for r in seen]
        )

    # ---- figures --------------------------------------------------------------------------------

    def _report(
        self,
        subs: Sequence[int],
        sees: dict[str, set[int]],
        protocols: Sequence[str],
        posts: Sequence[tuple[str, str, float]],
        arrivals: Arrivals,
        create_s: Sequence[float],
        ordinary: Author,
        celebrity: Author,
        threshold: int,
        selection: str,
        both: int,
    ) -> LiveReport:
        lags: dict[str, list[float]] = {"ordinary": [], "celebrity": []}
        by_protocol: dict[str, list[float]] = {TRANSPORT_WS: [], LEGACY_WS: []}
        missed = {"ordinary": 0, "celebrity": 0}
        expected = delivered = duplicates = 0
        per_post: list[dict[str, Any]] = []
        for (post_id, kind, began_at), create in zip(posts, create_s, strict=True):
            first: dict[int, float] = {}
            for index, at in arrivals.added.get(post_id, []):
                if index in first:
                    duplicates += 1
                else:
                    first[index] = at
            for index in sees[kind]:
                expected += 1
                if index in first:
                    delivered += 1
                    lag = first[index] - began_at
                    lags[kind].append(lag)
                    by_protocol[protocols[index]].append(lag)
                else:
                    missed[kind] += 1
            mine = Stat.of([first[i] - began_at for i in sees[kind] if i in first])
            per_post.append(
                {
                    "kind": kind,
                    "create_ms": round(create * 1000, 1),
                    "p50_ms": round(mine.p50, 1),
                    "max_ms": round(mine.max, 1),
                    "delivered": mine.n,
                    "expected": len(sees[kind]),
                }
            )
        counts = {p: sum(1 for x in protocols if x == p) for p in (TRANSPORT_WS, LEGACY_WS)}
        if arrivals.closed_early:
            self.notes.append(f"{arrivals.closed_early} subscriber sockets closed before the end")
        for line in arrivals.failed[:5]:
            if line not in self.notes:
                self.notes.append(line)
        return LiveReport(
            subscribers=len(subs) - len(arrivals.failed),
            pubsub_connections=0,
            rss_per_subscription_kb=0.0,
            lag_ms={k: Stat.of(v) for k, v in lags.items()},
            missed=sum(missed.values()),
            expected=expected,
            delivered=delivered,
            missed_by_kind=missed,
            duplicates=duplicates,
            resyncs=arrivals.resyncs,
            selection=selection,
            follow_both=both,
            protocols={p: n for p, n in counts.items() if n},
            lag_ms_by_protocol={p: Stat.of(v) for p, v in by_protocol.items() if v},
            create_post_ms=Stat.of(create_s),
            per_post=per_post,
            posts={k: sum(1 for _, kind, _ in posts if kind == k) for k in ("ordinary", "celebrity")},
            ordinary_author=ordinary.id,
            ordinary_followers=ordinary.followers,
            celebrity_author=celebrity.id,
            celebrity_followers=celebrity.followers,
            threshold=threshold,
        )
