"""`homefeed bench fanout`: the write path's figures on a seeded graph, each beside its floor.

What is measured, all in one process, against the configured (or embedded) servers:

1. Fan-out throughput: real posts by the authors with the most active followers go
   through the real outbox -> `FanoutWorker` -> `Fanout` -> `BulkWriter` path; timeline
   writes (active followers reached) per second of wall time. The same keys are then
   written by the `BulkWriter` alone (the Redis side, without PostgreSQL), and a sample of
   them, as default sorted sets, by a plain redis-py pipeline of ZADD + ZREMRANGEBYRANK per
   key, batched the same way: the baseline (redis-py's blocking client, the faster of its two;
   the asyncio client's rate is reported beside it).
2. createPost latency for an author with a handful of followers and for the author with
   the most: the write is one INSERT of post + outbox row, so follower count must not show.
3. Cold rebuild: for users following ~300 accounts, the timeline is deleted and rebuilt
   (`Feeds.rebuild_timeline`), and separately read cold through `Feeds.home`.
4. Post-to-visible lag: a worker runs in the background while an author with ~10k
   followers posts; the lag is from the start of createPost until sampled followers'
   timelines (including the follower written last) hold the post.
5. Memory: `MEMORY USAGE` over full timelines, per entry, beside a default sorted set of
   decimal-string members with id scores.

Isolation: timelines live under their own key prefix (`<prefix>-bench`), so the bench never
touches the timelines the service reads; they are warmed up full before measuring (real
rebuilds for a few users, copied with DUMP/RESTORE to the rest, since rebuilding 100k
timelines from PostgreSQL would take minutes) and dropped at the end. The posts it creates
are deleted from PostgreSQL at the end, outbox rows included.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import statistics
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from redis import Redis as SyncRedis
from redis.asyncio import Redis
from redis.exceptions import RedisError

from homefeed.bench import BenchError
from homefeed.feed.config import Settings
from homefeed.feed.ids import make_id
from homefeed.feed.services import Services, open_services
from homefeed.feed.timeline.bulk_writer import BATCH, BulkWriter
from homefeed.feed.timeline.keys import encode_id
from homefeed.feed.timeline.lists import ListQuery
from homefeed.workers.fanout_worker import FanoutWorker

SEED_HINT = "run `homefeed seed --users 100000` first"
# The default Redis/Valkey limit for listpack-encoded sorted sets: above it a sorted set
# becomes a skiplist + hash table, the "default sorted set" the memory target compares with.
DEFAULT_ZSET_LISTPACK_ENTRIES = 128
# The id a read reports after the last entry of a list that holds all history.
BOTTOM = 0

_ACTIVE_FOLLOWERS = """
SELECT f.follower_id
FROM followers f JOIN users u ON u.id = f.follower_id
WHERE f.followee_id = $1 AND u.last_seen_at >= now() - make_interval(days => $2)
ORDER BY f.follower_id
"""


@dataclass(frozen=True)
class FanoutOptions:
    """Knobs of `homefeed bench fanout` (defaults finish in a few minutes on two cores)."""

    posts: int = 40  # samples for the latency and lag figures (at least 30 for lag, 100 for cold)
    seconds: float = 6.0  # time budget of each throughput measurement
    fanout_keys: int = 120_000  # timelines (active followers of the top authors) written per round
    cold_users: int = 120
    # The floor's sorted sets are default ones (skiplists, ~100 bytes an entry): a sample of the
    # fan-out keys is enough for a rate, and keeps the shadow copies to ~1.5 GB.
    baseline_keys: int = 20_000
    memory_keys: int = 200
    lag_followers: int = 10_000  # follower count of the author whose post-to-visible lag is measured
    min_users: int = 50_000  # smaller graphs are refused (the test passes a tiny number)
    json_path: Path | None = None
    seed: int = 0


@dataclass
class Stat:
    """A latency distribution in milliseconds."""

    n: int
    p50: float
    p99: float
    max: float

    @classmethod
    def of(cls, samples_s: Sequence[float]) -> Stat:
        ms = sorted(s * 1000 for s in samples_s)
        if not ms:
            return cls(0, float("nan"), float("nan"), float("nan"))
        return cls(len(ms), statistics.median(ms), _percentile(ms, 0.99), ms[-1])


@dataclass
class FanoutReport:
    """Every figure of one run; the first seven are the contract of `--json`."""

    writes_per_s: float
    baseline_writes_per_s: float
    ordinary_post_ms: float
    celebrity_post_ms: float
    cold_rebuild_p99_ms: float
    visible_lag_p99_ms: float
    bytes_per_entry: float
    # Extras (other names in the JSON).
    bulkwriter_writes_per_s: float = 0.0
    baseline_async_writes_per_s: float = 0.0
    fanout_writes: int = 0
    fanout_seconds: float = 0.0
    fanout_authors: list[dict[str, int]] = field(default_factory=list)
    ordinary_post: Stat | None = None
    celebrity_post: Stat | None = None
    ordinary_followers: int = 0
    celebrity_followers: int = 0
    cold_rebuild: Stat | None = None
    cold_home: Stat | None = None
    pull_page: Stat | None = None
    cold_followees: float = 0.0
    visible_lag: Stat | None = None
    lag_author_followers: int = 0
    lag_active_followers: int = 0
    memory_timelines: int = 0
    memory_entries_per_timeline: float = 0.0
    memory_encoding: str = ""
    default_zset_bytes_per_entry: float = 0.0
    default_zset_encoding: str = ""
    graph_users: int = 0
    graph_follows: int = 0
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The JSON document of `--json`: contract keys as floats, extras beside them."""
        doc = asdict(self)
        for name in CONTRACT_KEYS:
            doc[name] = float(doc[name])
        return doc

    def lines(self) -> list[str]:
        """The human-readable figures, each with its ratio to the floor measured in this run."""
        base = self.baseline_writes_per_s or float("nan")
        out = [
            f"graph: {self.graph_users:,} users, {self.graph_follows:,} follows",
            f"writes_per_s            {self.writes_per_s:>12,.0f}  /s   "
            f"{self.writes_per_s / base:5.2f}x baseline"
            f"   (real outbox->worker path, median of rounds; {self.fanout_writes:,} writes in"
            f" {self.fanout_seconds:.2f} s;"
            " target >= 200,000)",
            f"bulkwriter_writes_per_s {self.bulkwriter_writes_per_s:>12,.0f}  /s   "
            f"{self.bulkwriter_writes_per_s / base:5.2f}x baseline"
            "   (BulkWriter alone, same keys, no PostgreSQL)",
            f"baseline_writes_per_s   {self.baseline_writes_per_s:>12,.0f}  /s    1.00x"
            "            (redis-py pipeline, ZADD + ZREMRANGEBYRANK per key, same batches,"
            f" default sorted sets; asyncio client {self.baseline_async_writes_per_s:,.0f}/s)",
        ]
        if self.ordinary_post and self.celebrity_post:
            ratio = self.celebrity_post_ms / self.ordinary_post_ms if self.ordinary_post_ms else float("nan")
            out += [
                f"ordinary_post_ms        {self.ordinary_post_ms:>12.2f}  ms   1.00x"
                f"            (p99 {self.ordinary_post.p99:.2f} ms, author with {self.ordinary_followers:,}"
                " followers)",
                f"celebrity_post_ms       {self.celebrity_post_ms:>12.2f}  ms   {ratio:5.2f}x ordinary"
                f"   (p99 {self.celebrity_post.p99:.2f} ms, author with {self.celebrity_followers:,}"
                " followers; target ~1x)",
            ]
        if self.cold_rebuild and self.cold_home and self.pull_page:
            ratio = self.cold_rebuild_p99_ms / self.pull_page.p99 if self.pull_page.p99 else float("nan")
            out += [
                f"cold_rebuild_p99_ms     {self.cold_rebuild_p99_ms:>12.2f}  ms   {ratio:5.2f}x pull page p99"
                f"   (p50 {self.cold_rebuild.p50:.2f} ms over {self.cold_rebuild.n} users following"
                f" ~{self.cold_followees:.0f}; target < 20 ms)",
                f"cold_home_p99_ms        {self.cold_home.p99:>12.2f}  ms   "
                f"{self.cold_home.p99 / self.pull_page.p99 if self.pull_page.p99 else float('nan'):5.2f}x"
                f" pull page p99   (p50 {self.cold_home.p50:.2f} ms: a whole cold Feeds.home read)",
                f"pull_page_p99_ms        {self.pull_page.p99:>12.2f}  ms    1.00x"
                f"            (p50 {self.pull_page.p50:.2f} ms: 20 ids straight from PostgreSQL)",
            ]
        if self.visible_lag:
            out.append(
                f"visible_lag_p99_ms      {self.visible_lag_p99_ms:>12.2f}  ms"
                f"                  (p50 {self.visible_lag.p50:.2f} ms over {self.visible_lag.n} posts by an"
                f" author with {self.lag_author_followers:,} followers, {self.lag_active_followers:,} active;"
                " target < 1000 ms)"
            )
        ratio = (
            self.bytes_per_entry / self.default_zset_bytes_per_entry
            if self.default_zset_bytes_per_entry
            else float("nan")
        )
        out.append(
            f"bytes_per_entry         {self.bytes_per_entry:>12.2f}  B    {ratio:5.2f}x default zset"
            f"   ({self.memory_timelines} timelines of ~{self.memory_entries_per_timeline:.0f} entries,"
            f" {self.memory_encoding}; default sorted set {self.default_zset_bytes_per_entry:.1f} B,"
            f" {self.default_zset_encoding}; target <= 20)"
        )
        out += [f"note: {n}" for n in self.notes]
        return out


CONTRACT_KEYS = (
    "writes_per_s",
    "baseline_writes_per_s",
    "ordinary_post_ms",
    "celebrity_post_ms",
    "cold_rebuild_p99_ms",
    "visible_lag_p99_ms",
    "bytes_per_entry",
)


def _percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile: with fewer than 100 samples the p99 is the maximum."""
    index = max(0, min(len(sorted_values) - 1, int(-(-q * len(sorted_values) // 1)) - 1))
    return sorted_values[index]


@contextmanager
def _timer(into: list[float]) -> Iterator[None]:
    began = time.perf_counter()
    try:
        yield
    finally:
        into.append(time.perf_counter() - began)


class _Members:
    """Fresh timeline members for synthetic rounds: ids above every existing one, never repeated."""

    def __init__(self) -> None:
        self._seq = 0

    def next(self) -> bytes:
        self._seq += 1
        return encode_id(make_id(int(time.time() * 1000) + 60_000, self._seq))


# ------------------------------------------------------------------------------------------------


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


class _Bench:
    def __init__(self, services: Services, options: FanoutOptions, log: Callable[[str], None]) -> None:
        self.s = services
        self.opt = options
        self.log = log
        self.pool = services.pool
        self.redis: Redis = services.redis
        self.feeds = services.feeds
        self.keys = services.feeds.keys
        self.size = services.feeds.size
        self.ttl = services.feeds.timeline_ttl
        self.rng = random.Random(options.seed)
        self.members = _Members()
        self.created: list[tuple[int, int]] = []  # (author, post id) to delete at the end
        self.warm: set[int] = set()  # users whose bench timeline exists
        self.templates: list[bytes] = []  # DUMPs of really rebuilt timelines, for warm-up copies
        self.notes: list[str] = []

    # ---- orchestration ------------------------------------------------------------------------

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

    async def _check_graph(self) -> tuple[int, int]:
        users: int = await self.pool.fetchval("SELECT count(*) FROM users")
        follows: int = await self.pool.fetchval("SELECT count(*) FROM followers")
        if users < max(self.opt.min_users, 2) or follows == 0:
            raise BenchError(
                f"the graph has {users:,} users and {follows:,} follows, too small to measure "
                f"(at least {self.opt.min_users:,} users wanted): {SEED_HINT}"
            )
        pending: int = await self.pool.fetchval("SELECT count(*) FROM outbox")
        if pending:
            # The bench's worker writes under its own key prefix: it must not consume real jobs.
            raise BenchError(
                f"the outbox holds {pending:,} pending jobs: let a worker (`homefeed worker`) finish them "
                "before benchmarking"
            )
        others: int = await self.pool.fetchval(
            """SELECT count(*) FROM pg_stat_activity
               WHERE datname = current_database() AND application_name = 'homefeed'"""
        )
        others -= self.pool.get_size()
        if others > 0:
            # Another homefeed process (an API with its in-process worker, a `homefeed worker`)
            # would claim the bench's outbox jobs and write them under its own key prefix.
            self.notes.append(
                f"{others} other homefeed connection(s) to this database: another process's fan-out "
                "worker may take the bench's jobs (figures and delivery checks then suffer)"
            )
            self.log(f"warning: {self.notes[-1]}")
        return users, follows

    async def cleanup(self) -> None:
        """Delete the bench's posts (and any outbox rows left for them) and its timelines."""
        if self.created:
            ids = [p for _, p in self.created]
            authors = sorted({a for a, _ in self.created})
            await self.pool.execute(
                "DELETE FROM outbox WHERE actor_id = ANY($1::bigint[]) AND subject_id = ANY($2::bigint[])",
                authors,
                ids,
            )
            await self.pool.execute(
                "DELETE FROM posts WHERE author_id = ANY($1::bigint[]) AND id = ANY($2::bigint[])",
                authors,
                ids,
            )
        batch: list[bytes] = []
        async for key in self.redis.scan_iter(match=f"{self.keys.prefix}:*", count=5000):
            batch.append(key)
            if len(batch) >= 5000:
                await self.redis.unlink(*batch)
                batch.clear()
        if batch:
            await self.redis.unlink(*batch)

    # ---- helpers --------------------------------------------------------------------------------

    def tl(self, user: int) -> bytes:
        return self.keys.timeline(user).encode()

    async def _sizes(self, users: Sequence[int]) -> list[int]:
        """How many ids each user's bench timeline holds, read through the engine (any storage)."""
        queries = [ListQuery(self.keys.timeline(u), None, 2 * self.size + 16) for u in users]
        reads = await self.feeds.lists.read(queries)
        return [sum(1 for i in r.ids if i != BOTTOM) for r in reads]

    async def _holding(self, users: Sequence[int], post_id: int) -> list[bool]:
        """Whether each user's bench timeline holds post_id among its newest entries."""
        reads = await self.feeds.lists.read([ListQuery(self.keys.timeline(u), None, 64) for u in users])
        return [post_id in r.ids for r in reads]

    async def _active_followers(self, author: int) -> list[int]:
        rows = await self.pool.fetch(_ACTIVE_FOLLOWERS, author, self.s.settings.active_days)
        return [r["follower_id"] for r in rows]

    async def _create_post(self, author: int, text: str) -> int:
        post = await self.s.posts.create(author, text)
        self.created.append((author, post.id))
        return post.id

    async def _warm_up(self, users: Sequence[int]) -> None:
        """Give every user a full bench timeline: a few real rebuilds, copied to the rest."""
        todo = [u for u in dict.fromkeys(users) if u not in self.warm]
        if not todo:
            return
        if not self.templates:
            sample = self.rng.sample(todo, min(24, len(todo)))
            for user in sample:
                await self.feeds.rebuild_timeline(user)
                self.warm.add(user)
            cards = await self._sizes(sample)
            fullest = max(cards) if cards else 0
            for user, card in zip(sample, cards, strict=True):
                if card >= min(self.size, fullest):
                    dumped = await self.redis.dump(self.tl(user))
                    if dumped:
                        self.templates.append(dumped)
            todo = [u for u in todo if u not in self.warm]
        began = time.perf_counter()
        ttl_ms = self.ttl * 1000
        for start in range(0, len(todo), 1000):
            async with self.redis.pipeline(transaction=False) as pipe:
                for i, user in enumerate(todo[start : start + 1000]):
                    pipe.restore(
                        self.tl(user), ttl_ms, self.templates[(start + i) % len(self.templates)], True
                    )
                await pipe.execute()
        self.warm.update(todo)
        self.log(f"  warmed up {len(todo):,} timelines in {time.perf_counter() - began:.1f} s")

    async def _poll(self, users: Sequence[int], post_id: int, deadline: float) -> bool:
        """Wait until every user's timeline holds post_id (a pipelined read ~every ms); False at deadline."""
        pending = list(users)
        while pending:
            found = await self._holding(pending, post_id)
            pending = [u for u, f in zip(pending, found, strict=True) if not f]
            if not pending:
                return True
            if time.perf_counter() > deadline:
                return False
            await asyncio.sleep(0.001)
        return True

    # ---- 1. throughput --------------------------------------------------------------------------

    async def _throughput(self) -> dict[str, Any]:
        self.log("fan-out throughput: picking authors with the most active followers ...")
        threshold = self.s.settings.celebrity_threshold
        rows = await self.pool.fetch(
            """SELECT id, follower_count FROM users
               WHERE fanout_mode = 0 AND follower_count < $1 AND follower_count > 0
               ORDER BY follower_count DESC, id LIMIT 64""",
            min(threshold, 2.0**62),
        )
        authors: list[tuple[int, list[int]]] = []
        union: set[int] = set()
        total = 0
        for r in rows:
            followers = await self._active_followers(r["id"])
            authors.append((r["id"], followers))
            union.update(followers)
            union.add(r["id"])
            total += len(followers) + 1
            if total >= self.opt.fanout_keys:
                break
        if not authors:
            raise BenchError(f"no pushed author with followers found: {SEED_HINT}")
        self.log(
            f"  {len(authors)} authors, {total:,} writes a round over {len(union):,} timelines;"
            " warming up ..."
        )
        await self._warm_up(sorted(union))
        keys = [self.tl(u) for a, f in authors for u in (a, *f)]
        base_keys = await self._baseline_sets(keys[: self.opt.baseline_keys])
        worker = FanoutWorker(self.s)
        writer = BulkWriter(self.s.settings.redis_url or "")
        # The floor is the faster of redis-py's two clients: the blocking one packs and parses a
        # pipeline about twice as fast as the asyncio one (run in a thread; nothing else runs then).
        sync_redis = SyncRedis.from_url(self.s.settings.redis_url or "")
        keep = self.size + 1
        try:
            # One untimed round: connections, prepared statements, the script cache.
            for author, _ in authors:
                await self._create_post(author, "bench warm-up")
            await worker.drain()

            real_s: list[float] = []
            real_writes = 0
            ours_s: list[float] = []
            base_s: list[float] = []
            base_async_s: list[float] = []
            deadline = time.perf_counter() + self.opt.seconds * 3
            rounds = 0
            while rounds < 2 or (time.perf_counter() < deadline and rounds < 50):
                rounds += 1
                for author, _ in authors:
                    await self._create_post(author, f"bench fan-out round {rounds}")
                with _timer(real_s):
                    await worker.drain()
                real_writes += total
                member = self.members.next()
                with _timer(ours_s):
                    await self._writer_alone(writer, keys, member)
                member = self.members.next()
                with _timer(base_s):
                    await asyncio.to_thread(_baseline_add_sync, sync_redis, base_keys, member, keep)
                member = self.members.next()
                with _timer(base_async_s):
                    await _baseline_add(self.redis, base_keys, member, keep)
        finally:
            sync_redis.close()
            await writer.close()
            await worker.writer.close()
        # Medians of the per-round rates: a round slowed by a neighbour's burst on this shared
        # machine counts once, not by its length.
        writes_per_s = statistics.median(total / t for t in real_s)
        ours = statistics.median(len(keys) / t for t in ours_s)
        base = statistics.median(len(base_keys) / t for t in base_s)
        base_async = statistics.median(len(base_keys) / t for t in base_async_s)
        self.log(
            f"  {rounds} rounds: real path {writes_per_s:,.0f}/s, BulkWriter {ours:,.0f}/s,"
            f" redis-py {base:,.0f}/s (asyncio client {base_async:,.0f}/s)"
        )
        await self._check_delivered(authors)
        return {
            "writes_per_s": writes_per_s,
            "baseline_writes_per_s": base,
            "baseline_async_writes_per_s": base_async,
            "bulkwriter_writes_per_s": ours,
            "fanout_writes": real_writes,
            "fanout_seconds": sum(real_s),
            "authors": [{"author": a, "active_followers": len(f)} for a, f in authors],
        }

    async def _writer_alone(self, writer: BulkWriter, keys: Sequence[bytes], member: bytes) -> None:
        """What Fanout does per batch of keys, without PostgreSQL: append, then rewrite the overgrown."""
        appended = await writer.append(keys, member, ttl=self.ttl, max_bytes=self.feeds.lists.max_bytes)
        for key in appended.overgrown:
            await self.feeds.lists.trim(key.decode())

    async def _baseline_sets(self, keys: Sequence[bytes]) -> list[bytes]:
        """Default sorted sets beside the given timelines, as full, for the redis-py floor to write.

        Members are the 7-byte ids scored by id, the obvious layout; the encoding is the server
        default for 800 entries (a skiplist), as a plain implementation would get.
        """
        sample = next(iter(self.warm))
        ids = [
            i
            for i in (await self.feeds.lists.read([ListQuery(self.keys.timeline(sample), None, self.size)]))[
                0
            ].ids
            if i != BOTTOM
        ]
        low = min(ids, default=make_id(int(time.time() * 1000) - 86_400_000, 0))
        ids += [low - 4096 * (j + 1) for j in range(self.size - len(ids))]
        shadow = [k + b":zbase" for k in keys]
        template = f"{self.keys.prefix}:{{zbase}}:template".encode()
        began = time.perf_counter()
        async with self._default_zset_limit():
            await self.redis.zadd(template, {encode_id(i): i for i in ids})
            dumped = await self.redis.dump(template)
            assert dumped is not None
            for start in range(0, len(shadow), 1000):
                async with self.redis.pipeline(transaction=False) as pipe:
                    for key in shadow[start : start + 1000]:
                        pipe.restore(key, self.ttl * 1000, dumped, True)
                    await pipe.execute()
        encoding = await self.redis.object("encoding", shadow[0])
        self.log(
            f"  baseline: {len(shadow):,} default sorted sets of {len(ids)} entries ({_text(encoding)})"
            f" in {time.perf_counter() - began:.1f} s"
        )
        return shadow

    @contextlib.asynccontextmanager
    async def _default_zset_limit(self) -> AsyncIterator[None]:
        """Lower the listpack limit for sorted sets to the server default meanwhile (restored after).

        The engine raises it at start-up; a sorted set created while it is low is a skiplist and
        stays one. Nothing in the engine depends on it being high while the bench runs.
        """
        previous: int | None = None
        try:
            reply = await self.redis.config_get("zset-max-listpack-entries")
            previous = int(reply["zset-max-listpack-entries"] or 0)
            await self.redis.config_set("zset-max-listpack-entries", DEFAULT_ZSET_LISTPACK_ENTRIES)
        except (RedisError, KeyError, ValueError):
            previous = None
            self.notes.append(
                "could not lower zset-max-listpack-entries (CONFIG denied): defaults not certain"
            )
        try:
            yield
        finally:
            if previous is not None:
                await self.redis.config_set("zset-max-listpack-entries", previous)

    async def _check_delivered(self, authors: Sequence[tuple[int, Sequence[int]]]) -> None:
        """The last post of each author must be in its followers' timelines (a sample)."""
        missing = 0
        checked = 0
        for author, followers in authors:
            last = max(p for a, p in self.created if a == author)
            sample = self.rng.sample(list(followers), min(50, len(followers)))
            found = await self._holding(sample, last)
            checked += len(found)
            missing += found.count(False)
        if missing:
            self.notes.append(
                f"fan-out check: {missing} of {checked} sampled timelines lack the last post"
                " (another process's worker took the job?)"
            )

    # ---- 2. createPost latency ------------------------------------------------------------------

    async def _post_latency(self) -> dict[str, Any]:
        self.log("createPost latency: ordinary vs most-followed author ...")
        celeb = await self.pool.fetchrow(
            "SELECT id, follower_count FROM users ORDER BY follower_count DESC, id LIMIT 1"
        )
        ordinary = await self.pool.fetchrow(
            """SELECT id, follower_count FROM users WHERE follower_count BETWEEN 1 AND 10
               ORDER BY follower_count, id LIMIT 1"""
        ) or await self.pool.fetchrow(
            "SELECT id, follower_count FROM users ORDER BY follower_count, id LIMIT 1"
        )
        assert celeb is not None and ordinary is not None
        samples = max(100, self.opt.posts * 3)
        times: dict[int, list[float]] = {celeb["id"]: [], ordinary["id"]: []}
        made: list[tuple[int, int]] = []
        for i in range(samples + 5):
            # Interleaved, so drift (autovacuum, checkpoints) hits both alike; 5 untimed first.
            for author in (ordinary["id"], celeb["id"]) if i % 2 else (celeb["id"], ordinary["id"]):
                began = time.perf_counter()
                post = await self.s.posts.create(author, f"bench createPost {i}")
                took = time.perf_counter() - began
                made.append((author, post.id))
                if i >= 5:
                    times[author].append(took)
        self.created += made
        # These were measured for the write alone: no fan-out (the celebrity's would cost millions
        # of writes); their outbox rows go now so no worker picks them up.
        await self.pool.execute(
            "DELETE FROM outbox WHERE kind = 'post' AND subject_id = ANY($1::bigint[])", [p for _, p in made]
        )
        result = {
            "ordinary": Stat.of(times[ordinary["id"]]),
            "celebrity": Stat.of(times[celeb["id"]]),
            "ordinary_followers": ordinary["follower_count"],
            "celebrity_followers": celeb["follower_count"],
        }
        self.log(
            f"  ordinary p50 {result['ordinary'].p50:.2f} ms, celebrity p50 {result['celebrity'].p50:.2f} ms"
        )
        return result

    # ---- 3. cold rebuild ---------------------------------------------------------------------------

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

    # ---- 4. post-to-visible lag ----------------------------------------------------------------------

    async def _lag(self) -> dict[str, Any]:
        threshold = self.s.settings.celebrity_threshold
        row = await self.pool.fetchrow(
            """SELECT id, follower_count FROM users
               WHERE fanout_mode = 0 AND follower_count < $1 AND follower_count > 0
               ORDER BY abs(follower_count - $2), id LIMIT 1""",
            min(threshold, 2.0**62),
            self.opt.lag_followers,
        )
        if row is None:
            raise BenchError(f"no pushed author found for the lag measurement: {SEED_HINT}")
        author = row["id"]
        followers = await self._active_followers(author)
        self.log(
            f"post-to-visible lag: author with {row['follower_count']:,} followers"
            f" ({len(followers):,} active) ..."
        )
        await self._warm_up([author, *followers])
        # Fan-out writes in follower-id order: the highest id is written last.
        sample = sorted(set(self.rng.sample(followers, min(8, len(followers))) + followers[-1:]))
        worker = FanoutWorker(self.s)
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run_forever(stop))
        lags: list[float] = []
        timeouts = 0
        try:
            await asyncio.sleep(0.1)
            for i in range(max(30, self.opt.posts)):
                # A random gap, so posts land at random phases of the worker's idle polling.
                await asyncio.sleep(self.rng.uniform(0.0, 0.05))
                began = time.perf_counter()
                post_id = await self._create_post(author, f"bench lag {i}")
                if await self._poll(sample, post_id, began + 10.0):
                    lags.append(time.perf_counter() - began)
                else:
                    timeouts += 1
        finally:
            stop.set()
            await task
        if timeouts:
            self.notes.append(f"visible lag: {timeouts} posts not visible within 10 s")
        result = {"lag": Stat.of(lags), "followers": row["follower_count"], "active": len(followers)}
        self.log(f"  lag p50 {result['lag'].p50:.1f} ms, p99 {result['lag'].p99:.1f} ms")
        return result

    # ---- 5. memory -------------------------------------------------------------------------------------

    async def _memory(self) -> dict[str, Any]:
        self.log("memory: MEMORY USAGE over full timelines ...")
        users = list(self.warm)
        self.rng.shuffle(users)
        chosen: list[tuple[bytes, int]] = []
        fallback: list[tuple[bytes, int]] = []
        for start in range(0, len(users), 500):
            part = users[start : start + 500]
            cards = await self._sizes(part)
            for user, card in zip(part, cards, strict=True):
                if card >= self.size:
                    chosen.append((self.tl(user), card))
                elif card:
                    fallback.append((self.tl(user), card))
            if len(chosen) >= self.opt.memory_keys:
                break
        if len(chosen) < min(100, self.opt.memory_keys):
            self.notes.append(f"memory: only {len(chosen)} full timelines; fuller ones added to the sample")
            fallback.sort(key=lambda kc: -kc[1])
            chosen += fallback[: self.opt.memory_keys - len(chosen)]
        chosen = chosen[: self.opt.memory_keys]
        if not chosen:
            return {
                "bytes_per_entry": float("nan"),
                "timelines": 0,
                "entries_per_timeline": 0.0,
                "encoding": "",
            }
        used, encoding = await _memory_used(self.redis, [k for k, _ in chosen])
        entries = sum(c for _, c in chosen)
        bytes_per_entry = used / entries
        return {
            "bytes_per_entry": bytes_per_entry,
            "timelines": len(chosen),
            "entries_per_timeline": entries / len(chosen),
            "encoding": encoding,
        }

    async def _default_zset_cost(self) -> tuple[float, str]:
        """Bytes per entry of a default sorted set: 800 decimal-string ids scored by id."""
        count = max(100, self.opt.memory_keys // 2)
        keys = [f"{self.keys.prefix}:{{cmp{i}}}:zset".encode() for i in range(count)]
        base = make_id(int(time.time() * 1000) - 86_400_000, 0)
        entries = max(self.size, 800)
        async with self._default_zset_limit(), self.redis.pipeline(transaction=False) as pipe:
            for n, key in enumerate(keys):
                ids = [base + (n * entries + j) * 4096 for j in range(entries)]
                pipe.zadd(key, {str(i): i for i in ids})
            await pipe.execute()
        used, encoding = await _memory_used(self.redis, keys)
        await self.redis.unlink(*keys)
        return used / (count * entries), encoding


async def _memory_used(redis: Redis, keys: Sequence[bytes]) -> tuple[int, str]:
    """MEMORY USAGE (exact: SAMPLES 0) summed over keys, and the encodings seen."""
    async with redis.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.memory_usage(key, samples=0)
            pipe.object("encoding", key)
        replies = await pipe.execute()
    used = sum(int(replies[i] or 0) for i in range(0, len(replies), 2))
    encodings = sorted({_text(replies[i]) for i in range(1, len(replies), 2)})
    return used, "/".join(encodings)


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _baseline_add_sync(redis: SyncRedis, keys: Sequence[bytes], member: bytes, keep: int) -> None:
    """The floor: a plain (blocking) redis-py pipeline, ZADD + trim per key, BulkWriter's batch size."""
    score = int.from_bytes(member, "big")
    for start in range(0, len(keys), BATCH):
        pipe = redis.pipeline(transaction=False)
        for key in keys[start : start + BATCH]:
            pipe.zadd(key, {member: score})
            pipe.zremrangebyrank(key, 0, -keep - 1)
        pipe.execute()


async def _baseline_add(redis: Redis, keys: Sequence[bytes], member: bytes, keep: int) -> None:
    """The same with redis-py's asyncio client (reported beside the floor)."""
    score = int.from_bytes(member, "big")
    for start in range(0, len(keys), BATCH):
        async with redis.pipeline(transaction=False) as pipe:
            for key in keys[start : start + BATCH]:
                pipe.zadd(key, {member: score})
                pipe.zremrangebyrank(key, 0, -keep - 1)
            await pipe.execute()
