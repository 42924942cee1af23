"""`homefeed bench read`: home-feed reads at 32 connections, hybrid vs pull vs the floor.

What is measured, against the configured (or embedded) servers and the seeded graph:

1. A sample of active users (seen within HOMEFEED_ACTIVE_DAYS) and a token for each, minted
   with the service's own secret (no log-ins).
2. The floor's snapshot: each sampled user's first page and up to `depth` deeper pages, read
   once through the real engine, with the users, posts, follows and likes hydrating them.
3. For each variant the API runs as its own process tree (`homefeed serve --workers 2`:
   uvicorn, uvloop, httptools, orjson answers; no in-process fan-out worker, since nothing is
   written) with HOMEFEED_FEED_STRATEGY = hybrid, pull or floor; all are started first, and
   only the one being measured gets load. A separate load-generator process holds
   `connections` keep-alive HTTP/1.1 connections; each runs sessions back to back: a random
   sampled user's `homeFeed(first: 20)` (post bodies, authors, like counts, viewer flags),
   then 0 to `depth` deeper pages following `endCursor`. After a warm-up, every request's
   latency (request written to answer read) is kept.
4. The `seconds` measured per variant are taken in `rounds` slices, the variants in turn (in a
   rotated order each round), each slice after a short warm-up of its own. A shared machine
   speeds up and slows down by several per cent over minutes (seen here: the same server gave
   2,315 to 2,786 rps on different runs); taken in turn, every variant meets the same drift, so
   the ratios between them hold.
5. Per variant: throughput, p50/p90/p99/max, errors, the load generator's own CPU time and
   the server's, and the machine's load. Ratios (hybrid vs pull, hybrid vs floor) are of the
   same run. Nothing is written to the database or Redis beyond what reads do (activity
   refreshes, cold rebuilds of timelines).
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import random
import resource
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import psutil

from homefeed.bench import BenchError
from homefeed.bench.baseline import capture
from homefeed.bench.server import ServedApi
from homefeed.feed import config
from homefeed.feed.auth import Tokens
from homefeed.feed.config import Settings
from homefeed.feed.services import open_services
from homefeed.feed.store.pool import create_pool

SEED_HINT = "run `homefeed seed --users 100000` first"
VARIANTS = ("hybrid", "pull", "floor")
FEED = """query HomeFeed($first: Int, $after: String) { homeFeed(first: $first, after: $after) {
  edges { cursor node { id text createdAt likeCount viewerHasLiked
                        author { id handle displayName viewerFollows } } }
  pageInfo { hasNextPage endCursor } } }"""
# Of each session's deeper pages (after the first): how often 0, 1, 2 or 3 are read.
DEPTH_WEIGHTS = (0.4, 0.2, 0.2, 0.2)


@dataclass(frozen=True)
class ReadOptions:
    """Knobs of `homefeed bench read` (defaults finish in about three minutes on two cores)."""

    connections: int = 32
    seconds: float = 20.0  # measured, per variant
    warmup: float = 5.0  # per variant, before its first slice
    rounds: int = 4  # slices each variant's measured seconds are split into (see the module doc)
    rewarm: float = 1.5  # warm-up before each later slice (new connections; the server is warm)
    users: int = 2000  # sampled active users
    first: int = 20
    depth: int = 3  # deeper pages a session may follow
    workers: int = 2  # API processes
    variants: tuple[str, ...] = VARIANTS
    min_users: int = 50_000  # smaller graphs are refused (the test passes a tiny number)
    server_timeout: float = 120.0
    json_path: Path | None = None
    markdown_path: Path | None = None
    chart_path: Path | None = None
    seed: int = 0


@dataclass
class VariantResult:
    """One variant's figures; the first five are the contract of `--json`."""

    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    requests: int = 0
    first_pages: int = 0
    deeper_pages: int = 0
    errors: int = 0
    error_sample: list[str] = field(default_factory=list)
    seconds: float = 0.0
    loadgen_cpu_s: float = 0.0  # user + system CPU of the load-generator process while measuring
    server_cpu_s: float = 0.0  # of every process of the API while measuring
    machine_busy: float = 0.0  # share of all cores busy while measuring (everything on the machine)
    latencies_ms: list[float] = field(default_factory=list, repr=False)

    @property
    def server_cpu_ms_per_request(self) -> float:
        return 1000 * self.server_cpu_s / self.requests if self.requests else float("nan")


@dataclass
class ReadReport:
    """Every figure of one run."""

    results: dict[str, VariantResult]
    connections: int
    workers: int
    graph_users: int
    sampled_users: int
    pulled_authors: int
    snapshot_pages: int
    load_before: list[float]
    load_after: list[float]
    cores: int
    order: list[str] = field(default_factory=list)  # the variants' slices, as they were measured

    def to_json(self) -> dict[str, Any]:
        """`{"hybrid"|"pull"|"floor": {"rps", "p50_ms", "p90_ms", "p99_ms", "max_ms", …}, "run": {…}}`."""
        doc: dict[str, Any] = {}
        for name, r in self.results.items():
            fields = asdict(r)
            fields.pop("latencies_ms")
            fields["server_cpu_ms_per_request"] = r.server_cpu_ms_per_request
            doc[name] = fields
        doc["run"] = {
            "connections": self.connections,
            "workers": self.workers,
            "graph_users": self.graph_users,
            "sampled_users": self.sampled_users,
            "pulled_authors": self.pulled_authors,
            "load_before": self.load_before,
            "load_after": self.load_after,
            "cores": self.cores,
            "slices": self.order,
            "ratios": self.ratios(),
        }
        return doc

    def ratios(self) -> dict[str, float]:
        r = self.results
        out: dict[str, float] = {}
        if "hybrid" in r and "pull" in r:
            out["hybrid_p99_over_pull_p99"] = r["hybrid"].p99_ms / r["pull"].p99_ms
            out["hybrid_rps_over_pull_rps"] = r["hybrid"].rps / r["pull"].rps
        if "hybrid" in r and "floor" in r:
            out["hybrid_rps_over_floor_rps"] = r["hybrid"].rps / r["floor"].rps
        return out

    def checks(self) -> list[tuple[str, bool]]:
        """The targets of the read path, each with whether this run met it."""
        r, q = self.results, self.ratios()
        out: list[tuple[str, bool]] = []
        if "hybrid" in r:
            out.append((f"hybrid p99 {r['hybrid'].p99_ms:.1f} ms < 50 ms", r["hybrid"].p99_ms < 50))
        if "hybrid_p99_over_pull_p99" in q:
            v = q["hybrid_p99_over_pull_p99"]
            out.append((f"hybrid p99 / pull p99 = {v:.2f} <= 0.33", v <= 1 / 3))
        if "hybrid_rps_over_floor_rps" in q:
            v = q["hybrid_rps_over_floor_rps"]
            out.append((f"hybrid rps / floor rps = {v:.2f} >= 0.70", v >= 0.7))
        if "hybrid_rps_over_pull_rps" in q:
            v = q["hybrid_rps_over_pull_rps"]
            out.append((f"hybrid rps / pull rps = {v:.2f} >= 2", v >= 2))
        return out

    def lines(self) -> list[str]:
        """The human-readable figures."""
        out = [
            f"graph: {self.graph_users:,} users; {self.sampled_users:,} sampled active users"
            f" ({self.pulled_authors} pulled authors in the graph); homeFeed(first: 20) at"
            f" {self.connections} connections; server: --workers {self.workers}",
            f"{'variant':<8} {'rps':>8} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'max ms':>8}"
            f" {'requests':>9} {'errors':>6} {'srv CPU/req':>11} {'loadgen CPU':>12}",
        ]
        for name, r in self.results.items():
            out.append(
                f"{name:<8} {r.rps:>8.0f} {r.p50_ms:>8.1f} {r.p90_ms:>8.1f} {r.p99_ms:>8.1f}"
                f" {r.max_ms:>8.1f} {r.requests:>9,} {r.errors:>6} {r.server_cpu_ms_per_request:>9.2f}ms"
                f" {r.loadgen_cpu_s:>6.1f} s/{r.seconds:.0f} s"
            )
        for text, ok in self.checks():
            out.append(f"target {'met   ' if ok else 'MISSED'} {text}")
        out.append(
            "load average before: "
            + " ".join(f"{x:.2f}" for x in self.load_before)
            + "; after: "
            + " ".join(f"{x:.2f}" for x in self.load_after)
            + f" ({self.cores} cores; the load generator shares them)"
        )
        for name, r in self.results.items():
            if r.error_sample:
                out.append(f"{name} errors, e.g.: {r.error_sample[0][:300]}")
        return out

    def markdown(self) -> str:
        """The figures as a markdown table."""
        rows = [
            "| variant | rps | p50 ms | p90 ms | p99 ms | max ms | requests | errors"
            " | server CPU / request | load generator CPU |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for name, r in self.results.items():
            rows.append(
                f"| {name} | {r.rps:,.0f} | {r.p50_ms:.1f} | {r.p90_ms:.1f} | {r.p99_ms:.1f}"
                f" | {r.max_ms:.1f} | {r.requests:,} | {r.errors} | {r.server_cpu_ms_per_request:.2f} ms"
                f" | {r.loadgen_cpu_s:.1f} s in {r.seconds:.0f} s |"
            )
        rows.append("")
        rows += [f"- {'met' if ok else '**missed**'}: {text}" for text, ok in self.checks()]
        rows.append(
            f"- {self.connections} connections, `--workers {self.workers}`, {self.sampled_users:,} users"
            f" of {self.graph_users:,}; load average before {self.load_before[0]:.2f},"
            f" after {self.load_after[0]:.2f} on {self.cores} cores"
        )
        return "\n".join(rows) + "\n"

    def chart(self, path: Path) -> None:
        """Latency distributions (percentile curves) and throughput, as a PNG."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, (lat, thr) = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [3, 1]})
        colors = {"hybrid": "tab:blue", "pull": "tab:red", "floor": "tab:gray"}
        for name, r in self.results.items():
            if not r.latencies_ms:
                continue
            ms = np.sort(np.asarray(r.latencies_ms))
            # x: percentile on a "nines" scale, so the tail (p99, p99.9) gets room.
            q = (np.arange(len(ms)) + 0.5) / len(ms)
            lat.plot(-np.log10(1 - q), ms, label=f"{name}", color=colors.get(name))
        ticks = [0, 0.5, 1, 1.30103, 2, 3]
        lat.set_xticks(ticks, ["p0", "p68", "p90", "p95", "p99", "p99.9"])
        lat.set_xlim(0, 3.2)
        lat.set_yscale("log")
        lat.set_ylabel("latency (ms, log scale)")
        lat.set_xlabel("percentile")
        lat.axhline(50, color="black", lw=0.6, ls=":")
        lat.set_title(f"homeFeed(first: 20) at {self.connections} connections")
        lat.legend()
        lat.grid(True, which="both", alpha=0.3)
        names = list(self.results)
        thr.bar(names, [self.results[n].rps for n in names], color=[colors.get(n) for n in names])
        thr.set_title("throughput (requests/s)")
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=110)
        plt.close(fig)


# ---- the load generator (its own process) -------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """What the load generator is told."""

    host: str
    port: int
    viewers: list[tuple[int, str]]  # (user id, token)
    connections: int
    warmup: float
    seconds: float
    first: int
    depth: int
    seed: int


@dataclass
class LoadResult:
    latencies_ms: list[float]
    first_pages: int
    deeper_pages: int
    errors: int
    error_sample: list[str]
    seconds: float
    cpu_s: float


def load_generator(conn: Connection, plan: Plan) -> None:
    """Entry point of the load-generator process: runs the plan, sends back a LoadResult."""
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    try:
        result = asyncio.run(_Load(plan).run())
        conn.send(result)
    except BaseException as exc:
        conn.send(exc)
        raise
    finally:
        conn.close()


class _Load:
    """Keep-alive HTTP/1.1 over raw streams: a client library would cost CPU the server needs."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.recording = False
        self.stop = False
        self.latencies: list[float] = []
        self.first_pages = 0
        self.deeper_pages = 0
        self.errors = 0
        self.error_sample: list[str] = []

    async def run(self) -> LoadResult:
        tasks = [asyncio.create_task(self._connection(i)) for i in range(self.plan.connections)]
        await asyncio.sleep(self.plan.warmup)
        self.recording = True
        cpu0, t0 = _cpu(), time.perf_counter()
        await asyncio.sleep(self.plan.seconds)
        self.recording = False
        self.stop = True
        cpu1, t1 = _cpu(), time.perf_counter()
        await asyncio.gather(*tasks, return_exceptions=True)
        return LoadResult(
            self.latencies,
            self.first_pages,
            self.deeper_pages,
            self.errors,
            self.error_sample,
            t1 - t0,
            cpu1 - cpu0,
        )

    def _request(self, token: str, after: str | None) -> bytes:
        body = orjson.dumps(
            {
                "query": FEED,
                "variables": {"first": self.plan.first, "after": after},
                "operationName": "HomeFeed",
            }
        )
        head = (
            f"POST /graphql HTTP/1.1\r\nHost: {self.plan.host}:{self.plan.port}\r\n"
            f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        return head.encode() + body

    async def _connection(self, index: int) -> None:
        rng = random.Random(self.plan.seed * 1000 + index)
        reader, writer = await asyncio.open_connection(self.plan.host, self.plan.port)
        try:
            while not self.stop:
                _, token = rng.choice(self.plan.viewers)
                deeper = rng.choices(range(len(DEPTH_WEIGHTS)), DEPTH_WEIGHTS)[0]
                after: str | None = None
                for page in range(min(deeper, self.plan.depth) + 1):
                    if self.stop:
                        break
                    recording = self.recording
                    started = time.perf_counter()
                    writer.write(self._request(token, after))
                    status, body = await _response(reader)
                    elapsed = time.perf_counter() - started
                    after = self._check(status, body)
                    if recording and self.recording:
                        self.latencies.append(elapsed * 1000)
                        if page == 0:
                            self.first_pages += 1
                        else:
                            self.deeper_pages += 1
                    if after is None:
                        break
        finally:
            writer.close()

    def _check(self, status: int, body: bytes) -> str | None:
        """The next page's cursor; None at the end of the feed or on an error (counted)."""
        try:
            doc = orjson.loads(body)
            if status != 200 or doc.get("errors"):
                raise ValueError(f"HTTP {status}: {body[:300]!r}")
            info = doc["data"]["homeFeed"]["pageInfo"]
            return info["endCursor"] if info["hasNextPage"] else None
        except (ValueError, KeyError, TypeError) as exc:
            if self.recording:
                self.errors += 1
                if len(self.error_sample) < 5:
                    self.error_sample.append(str(exc))
            return None


async def _response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return status, await reader.readexactly(length)


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# ---- the bench (this process) -----------------------------------------------------------------------


def _percentile(ms: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(ms), q)) if ms else float("nan")


async def run(settings: Settings, options: ReadOptions, log: Callable[[str], None] = print) -> ReadReport:
    """Run the bench against `settings` (both URLs set) and return the figures."""
    unknown = set(options.variants) - set(VARIANTS)
    if unknown:
        raise BenchError(f"unknown variants {sorted(unknown)}; choose from {', '.join(VARIANTS)}")
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
        pulled = int(await pool.fetchval("SELECT count(*) FROM users WHERE fanout_mode <> 0"))
    finally:
        await pool.close()
    if not active:
        raise BenchError(f"no active users in the graph: {SEED_HINT}")
    viewers = random.Random(options.seed).sample(active, min(options.users, len(active)))
    secret = config.jwt_secret(settings)
    tokens = Tokens(secret, 3600)
    plan_viewers = [(v, tokens.issue(v)) for v in viewers]

    with tempfile.TemporaryDirectory(prefix="homefeed-bench-read-") as tmp:
        snapshot_path = Path(tmp) / "floor.pickle"
        log(f"reading {len(viewers):,} users' feeds once through the engine (the floor's snapshot) …")
        services = await open_services(settings)
        try:
            snap = await capture(services, viewers, options.first, options.depth)
        finally:
            await services.close()
        snap.save(snapshot_path)
        results, order = await _measure(settings, secret, snapshot_path, plan_viewers, options, log)
    return ReadReport(
        results=results,
        connections=options.connections,
        workers=options.workers,
        graph_users=graph_users,
        sampled_users=len(viewers),
        pulled_authors=pulled,
        snapshot_pages=len(snap.pages),
        load_before=load_before,
        load_after=list(os.getloadavg()),
        cores=os.cpu_count() or 1,
        order=order,
    )


async def _measure(
    settings: Settings,
    secret: str,
    snapshot: Path,
    viewers: list[tuple[int, str]],
    options: ReadOptions,
    log: Callable[[str], None],
) -> tuple[dict[str, VariantResult], list[str]]:
    """Every variant's figures, measured in turn slice by slice (see the module doc), and the order."""
    variants = list(options.variants)
    rounds = max(1, options.rounds)
    servers: dict[str, ServedApi] = {}
    slices: dict[str, list[_Slice]] = {v: [] for v in variants}
    order: list[str] = []
    try:
        for variant in variants:
            log(f"{variant}: starting the API (--workers {options.workers}) …")
            servers[variant] = ServedApi(
                settings,
                secret,
                options.workers,
                {
                    "HOMEFEED_FEED_STRATEGY": variant,
                    "HOMEFEED_FLOOR_SNAPSHOT": str(snapshot),
                    # Nothing is written during the bench: a fan-out worker would only poll the outbox.
                    "HOMEFEED_INPROCESS_WORKER": "0",
                },
            )
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
                slices[variant].append(await _slice(servers[variant], viewers, options, warmup, each))
                order.append(variant)
    finally:
        for server in servers.values():
            server.stop()
    results = {v: _combine(slices[v]) for v in variants}
    for variant, result in results.items():
        log(
            f"{variant}: {result.rps:,.0f} rps, p50 {result.p50_ms:.1f} ms, p99 {result.p99_ms:.1f} ms,"
            f" {result.errors} errors"
        )
    return results, order


@dataclass
class _Slice:
    load: LoadResult
    server_cpu_s: float
    machine_busy: float


async def _slice(
    server: ServedApi, viewers: list[tuple[int, str]], options: ReadOptions, warmup: float, seconds: float
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
    )
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=load_generator, args=(child, plan), daemon=True)
    proc.start()
    child.close()
    await asyncio.sleep(warmup)
    cpu0, machine0 = server.cpu_seconds(), psutil.cpu_times()
    await asyncio.sleep(seconds)
    cpu1, machine1 = server.cpu_seconds(), psutil.cpu_times()
    got = await asyncio.to_thread(_receive, parent, warmup + seconds + 60)
    proc.join(10)
    if isinstance(got, BaseException):
        raise BenchError(f"the load generator failed: {got!r}")
    assert isinstance(got, LoadResult)
    return _Slice(got, cpu1 - cpu0, _busy_share(machine0, machine1))


def _combine(slices: Sequence[_Slice]) -> VariantResult:
    """One variant's figures over all its slices."""
    ms = [x for s in slices for x in s.load.latencies_ms]
    seconds = sum(s.load.seconds for s in slices)
    return VariantResult(
        rps=len(ms) / seconds if seconds else 0.0,
        p50_ms=_percentile(ms, 50),
        p90_ms=_percentile(ms, 90),
        p99_ms=_percentile(ms, 99),
        max_ms=max(ms) if ms else float("nan"),
        requests=len(ms),
        first_pages=sum(s.load.first_pages for s in slices),
        deeper_pages=sum(s.load.deeper_pages for s in slices),
        errors=sum(s.load.errors for s in slices),
        error_sample=[e for s in slices for e in s.load.error_sample][:5],
        seconds=seconds,
        loadgen_cpu_s=sum(s.load.cpu_s for s in slices),
        server_cpu_s=sum(s.server_cpu_s for s in slices),
        machine_busy=sum(s.machine_busy * s.load.seconds for s in slices) / seconds if seconds else 0.0,
        latencies_ms=ms,
    )


def _receive(conn: Connection, within: float) -> object:
    if not conn.poll(within):
        raise BenchError("the load generator sent nothing back")
    return conn.recv()


def _busy_share(before: Any, after: Any) -> float:
    idle = (after.idle + getattr(after, "iowait", 0)) - (before.idle + getattr(before, "iowait", 0))
    total = sum(after) - sum(before)
    return 1 - idle / total if total > 0 else float("nan")


def write_outputs(report: ReadReport, options: ReadOptions) -> list[Path]:
    """The JSON, markdown and PNG files the options name; returns the paths written."""
    written: list[Path] = []
    if options.json_path is not None:
        options.json_path.parent.mkdir(parents=True, exist_ok=True)
        options.json_path.write_bytes(orjson.dumps(report.to_json(), option=orjson.OPT_INDENT_2))
        written.append(options.json_path)
    if options.markdown_path is not None:
        options.markdown_path.parent.mkdir(parents=True, exist_ok=True)
        options.markdown_path.write_text(report.markdown())
        written.append(options.markdown_path)
    if options.chart_path is not None:
        report.chart(options.chart_path)
        written.append(options.chart_path)
    return written
