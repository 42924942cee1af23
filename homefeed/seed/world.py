"""A synthetic world for `homefeed seed`: a deterministic power-law social graph COPYed into PostgreSQL.

Two halves, kept apart so the first can be unit-tested without a database:

- `generate(params)` is pure numpy: the same `SeedParams` (seed and `now_ms` included)
  give the same `World`, bit for bit, because every random draw comes from one
  `numpy.random.Generator(PCG64(seed))` in a fixed order.
- `seed(pool, params, progress)` checks the database is empty (or truncates it with
  `reset`), generates the world in a thread, and loads it with COPY in one transaction.

The graph: popularity is Zipf-like (user of rank r, over a random permutation of users,
is chosen as a followee with weight r**-zipf_exponent), followee counts are lognormal
around a median of ~200 (scaled down for tiny worlds), posting activity is lognormal
(Poisson-smoothed to integers) with a configurable mean, posts spread over the last
~30 days. At 100,000 users that is ~20M follows, a handful of accounts above 50k
followers and ~1M posts.

Every seeded user's password is `password`: all rows share one precomputed argon2id
hash, so seeding never hashes 100k times.

Seeded posts get no outbox rows: the timelines are built in one bulk step at the end
(`_fan_out`), not by replaying a million fan-out jobs.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Protocol

import asyncpg
import numpy as np
import numpy.typing as npt
from redis.asyncio import Redis
from redis.exceptions import RedisError
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from homefeed.feed.config import Settings
from homefeed.feed.ids import EPOCH_MS, SEQUENCE_BITS
from homefeed.feed.store.pool import create_pool

log = logging.getLogger(__name__)

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]

# argon2id (argon2-cffi defaults: m=65536, t=3, p=4) of the password "password".
SEEDED_PASSWORD = "password"
SEEDED_PASSWORD_HASH = (
    "$argon2id$v=19$m=65536,t=3,p=4$diZEdmqvohZ48vsIghcsCQ$OBrbbuzp1vCnYTXtZACt6H1M0UUaiiOiXJ77lFhesjo"
)

DAY_MS = 86_400_000
# Seeded times stop this far before "now", so live ids minted by next_id() are always larger.
_SAFETY_MS = 60_000
# Users joined between these many days ago, so they exist before any of their posts or follows.
_JOINED_DAYS = (60, 730)
# PostgreSQL's binary timestamps count microseconds from 2000-01-01T00:00:00Z.
_PG_EPOCH_MS = 946_684_800_000
# Tables the seed fills, and the ones --reset empties too (they reference users or posts).
SEEDED_TABLES = ("users", "posts", "follows", "followers")
RESET_TABLES = (*SEEDED_TABLES, "outbox", "likes", "blocks", "mutes")
# Big tables whose secondary indexes and foreign keys are dropped during COPY and rebuilt after.
_BULK_TABLES = ("posts", "follows", "followers")


def _split(text: str) -> tuple[str, ...]:
    return tuple(text.split())


_FIRST_NAMES = _split(
    "Ada Alan Barbara Claude Donald Edsger Frances Grace Hedy Ivan John Katherine Leslie "
    "Margaret Niklaus Ole Radia Shafi Tim Yukihiro"
)
_LAST_NAMES = _split(
    "Lovelace Turing Liskov Shannon Knuth Dijkstra Allen Hopper Lamarr Sutherland McCarthy "
    "Johnson Lamport Hamilton Wirth Dahl Perlman Goldwasser Berners-Lee Matsumoto"
)
_WORDS = _split(
    "coffee deploy weekend garden rust python sunset river latency cache pizza train bug "
    "release music mountain review index queue merge rain book cat dog kernel graph shard "
    "timeline feed launch tea morning night city ocean build test refactor idea chart snow bike "
    "coast forest lunch meeting sprint story photo game match concert podcast paper draft "
    "thread window bridge signal garden harbor valley planet comet"
)


_NOT_EMPTY = "the users table is not empty: pass --reset to replace everything with a new world"


class SeedError(Exception):
    """Seeding cannot proceed; the message says why and what to do."""


# ----------------------------------------------------------------------------------------------
# Parameters and the generated world


@dataclass(frozen=True, slots=True)
class SeedParams:
    users: int
    seed: int = 0
    posts_per_user: float = 10.0
    reset: bool = False
    # Followee counts: lognormal with this median (scaled down to a tenth of the world when
    # smaller, so tiny worlds stay sparse) and log-space spread, capped at users - 1.
    median_followees: float = 200.0
    followee_sigma: float = 0.45
    # Popularity weight of rank r is r**-zipf_exponent. Followees are drawn without replacement,
    # so a steeper exponent saturates the top ranks at "everyone follows them"; 0.72 leaves a
    # handful of accounts above 50k followers at 100k users.
    zipf_exponent: float = 0.72
    # Posts per user: Poisson around a lognormal rate with this mean and log-space spread.
    posting_sigma: float = 1.2
    post_days: int = 30
    # Share of users seen within `active_days`; the rest were last seen earlier (the engine skips
    # them at fan-out).
    active_fraction: float = 0.75
    active_days: int = 7
    # The instant the world is generated relative to; None means the current time. Tests pin it
    # so the generated world is reproducible to the millisecond.
    now_ms: int | None = None

    def check(self) -> None:
        """Raise SeedError naming the first invalid parameter."""
        if self.users < 1:
            raise SeedError(f"--users must be at least 1, got {self.users}")
        if self.seed < 0:
            raise SeedError(f"--seed must be non-negative, got {self.seed}")
        if not (0 <= self.posts_per_user <= 10_000) or math.isnan(self.posts_per_user):
            raise SeedError(f"--posts-per-user must be between 0 and 10000, got {self.posts_per_user}")
        if not 0 <= self.active_fraction <= 1:
            raise SeedError(f"active_fraction must be between 0 and 1, got {self.active_fraction}")
        if not 1 <= self.post_days < _JOINED_DAYS[0]:
            raise SeedError(f"post_days must be between 1 and {_JOINED_DAYS[0] - 1}, got {self.post_days}")
        if self.median_followees <= 0 or self.zipf_exponent < 0:
            raise SeedError("median_followees must be positive and zipf_exponent non-negative")


@dataclass(frozen=True, slots=True, eq=False)
class World:
    """A generated world. Users are numbered 0..n-1 in id order (so also in join order).

    Follow edges are sorted by (follower, followee), which is the primary-key order of
    `follows`; `followers_order` permutes them into (followee, follower) order for
    `followers`. Posts are sorted by id, which is also time order.
    """

    params: SeedParams
    now_ms: int
    user_ids: I64
    user_created_ms: I64
    user_last_seen_ms: I64
    follower_count: I64
    following_count: I64
    follow_src: I64
    follow_dst: I64
    follow_ms: I64
    followers_order: I64
    post_author: I64
    post_ids: I64
    post_text_bits: I64

    @property
    def users(self) -> int:
        return int(self.user_ids.shape[0])

    @property
    def follows(self) -> int:
        return int(self.follow_src.shape[0])

    @property
    def posts(self) -> int:
        return int(self.post_ids.shape[0])

    def handle(self, user: int) -> str:
        return user_handle(user, self.users)

    def display_name(self, user: int) -> str:
        return user_display_name(user)

    def post_text(self, post: int) -> str:
        return post_text(int(self.post_text_bits[post]), post)

    def active_users(self) -> int:
        """Users seen within `params.active_days` of `now_ms`."""
        cutoff = self.now_ms - self.params.active_days * DAY_MS
        return int(np.count_nonzero(self.user_last_seen_ms >= cutoff))


def user_handle(user: int, users: int) -> str:
    """`user000123`: zero-padded so handles sort like user numbers."""
    width = max(6, len(str(max(users - 1, 0))))
    return f"user{user:0{width}d}"


def user_display_name(user: int) -> str:
    first = _FIRST_NAMES[user % len(_FIRST_NAMES)]
    last = _LAST_NAMES[(user // len(_FIRST_NAMES)) % len(_LAST_NAMES)]
    return f"{first} {last}"


def post_text(bits: int, post: int) -> str:
    """A short post made of 3..12 words picked by the bits of a per-post random number."""
    count = 3 + bits % 10
    bits //= 10
    words: list[str] = []
    for _ in range(count):
        words.append(_WORDS[bits % len(_WORDS)])
        bits //= len(_WORDS)
    return " ".join(words) + f" #{post}"


def mint_ids(ms: I64) -> I64:
    """Ids (the layout of homefeed.feed.ids.make_id) for ascending millisecond times: strictly increasing.

    Posts in the same millisecond get sequences 0, 1, 2, ...; the (astronomically unlikely)
    4097th one spills into the next millisecond rather than colliding.
    """
    n = ms.shape[0]
    index = np.arange(n, dtype=np.int64)
    sequence = index - np.searchsorted(ms, ms, side="left").astype(np.int64)
    ids = ((ms - EPOCH_MS) << SEQUENCE_BITS) + sequence
    # Strictly increasing: ids - index must never decrease.
    return np.asarray(np.maximum.accumulate(ids - index) + index, dtype=np.int64)


# Generation steps reported to the progress callback (one tick each).
GENERATION_STEPS = 6


def generate(params: SeedParams, on_step: Callable[[], None] | None = None) -> World:
    """The world for params: pure and deterministic (same params, same arrays)."""
    params.check()
    tick = on_step or (lambda: None)
    rng = np.random.Generator(np.random.PCG64(params.seed))
    now_ms = params.now_ms if params.now_ms is not None else int(time.time() * 1000)
    n = params.users
    end_ms = now_ms - _SAFETY_MS

    # Users: join times, ids minted from them, last seen.
    joined = end_ms - rng.uniform(_JOINED_DAYS[0] * DAY_MS, _JOINED_DAYS[1] * DAY_MS, n).astype(np.int64)
    user_ids = mint_ids(np.sort(joined))
    created_ms = (user_ids >> SEQUENCE_BITS) + EPOCH_MS
    active_ms = max(params.active_days, 1) * DAY_MS
    is_active = rng.random(n) < params.active_fraction
    recent = end_ms - rng.uniform(0, active_ms - DAY_MS / 24, n).astype(np.int64)
    # Inactive users were last seen somewhere between joining and a day before the active window.
    stale_hi = np.maximum(created_ms, end_ms - active_ms - DAY_MS)
    stale = created_ms + (rng.random(n) * (stale_hi - created_ms)).astype(np.int64)
    last_seen_ms = np.where(is_active, recent, stale).astype(np.int64)
    tick()

    # Popularity: Zipf weights over a random permutation of users.
    rank = np.empty(n, dtype=np.int64)
    rank[rng.permutation(n)] = np.arange(1, n + 1, dtype=np.int64)
    weight = rank.astype(np.float64) ** -params.zipf_exponent
    cdf = np.cumsum(weight)
    cdf /= cdf[-1]
    tick()

    # Followee counts: lognormal around the median, at least 1, at most everyone else.
    median = min(params.median_followees, max(1.0, (n - 1) / 10))
    wanted = np.rint(np.exp(math.log(median) + params.followee_sigma * rng.standard_normal(n)))
    wanted = np.clip(wanted, min(1, n - 1), n - 1).astype(np.int64)
    tick()

    keys = _draw_edges(rng, n, wanted, cdf, weight)
    tick()

    src = keys // n
    dst = keys % n
    del keys
    # A follow happens after both accounts exist and before now.
    lo = np.maximum(created_ms[src], created_ms[dst])
    follow_ms = lo + (rng.random(src.shape[0]) * (end_ms - lo)).astype(np.int64)
    followers_order = np.argsort(dst * n + src, kind="stable").astype(np.int64)
    follower_count = np.bincount(dst, minlength=n).astype(np.int64)
    following_count = np.bincount(src, minlength=n).astype(np.int64)
    tick()

    # Posts: lognormal rate per user (mean posts_per_user), Poisson counts, uniform times.
    if params.posts_per_user > 0:
        mu = math.log(params.posts_per_user) - params.posting_sigma**2 / 2
        rate = rng.lognormal(mu, params.posting_sigma, n)
        per_user = rng.poisson(rate).astype(np.int64)
    else:
        per_user = np.zeros(n, dtype=np.int64)
    author = np.repeat(np.arange(n, dtype=np.int64), per_user)
    start = end_ms - params.post_days * DAY_MS
    post_ms = start + (rng.random(author.shape[0]) * (end_ms - start)).astype(np.int64)
    order = np.argsort(post_ms, kind="stable")
    post_author = author[order]
    post_ids = mint_ids(post_ms[order])
    text_bits = np.asarray(rng.integers(0, 2**62, size=post_ids.shape[0], dtype=np.int64))
    tick()

    return World(
        params=params,
        now_ms=now_ms,
        user_ids=user_ids,
        user_created_ms=created_ms,
        user_last_seen_ms=last_seen_ms,
        follower_count=follower_count,
        following_count=following_count,
        follow_src=src,
        follow_dst=dst,
        follow_ms=follow_ms,
        followers_order=followers_order,
        post_author=post_author,
        post_ids=post_ids,
        post_text_bits=text_bits,
    )


def _draw_edges(rng: np.random.Generator, n: int, wanted: I64, cdf: F64, weight: F64) -> I64:
    """Sorted distinct edge keys follower*n + followee: wanted[u] followees per user, by popularity.

    Sampling without replacement, vectorised: draw with replacement, drop self-follows and
    duplicates, redraw each user's shortfall, repeat. Shortfalls shrink geometrically; the few
    left after the rounds (users wanting most of a tiny world) are filled exactly per user.
    """
    users = np.arange(n, dtype=np.int64)
    accepted = np.empty(0, dtype=np.int64)
    need = wanted.copy()
    for _ in range(24):
        if not need.any():
            break
        src = np.repeat(users, need)
        dst = np.minimum(np.searchsorted(cdf, rng.random(src.shape[0]), side="right"), n - 1)
        fresh = _sorted_unique((src * n + dst)[src != dst])
        if accepted.size:
            at = np.minimum(np.searchsorted(accepted, fresh), accepted.size - 1)
            fresh = fresh[accepted[at] != fresh]
        # Both sorted: a stable sort of the concatenation is a linear merge.
        accepted = np.sort(np.concatenate([accepted, fresh]), kind="stable")
        need = wanted - np.bincount(accepted // n, minlength=n)
    if need.any():
        extra: list[I64] = []
        for u in np.flatnonzero(need):
            have = accepted[np.searchsorted(accepted, u * n) : np.searchsorted(accepted, (u + 1) * n)] % n
            taken = np.zeros(n, dtype=bool)
            taken[have] = True
            taken[u] = True
            candidates = np.flatnonzero(~taken)
            p = weight[candidates] / weight[candidates].sum()
            picked = rng.choice(candidates, size=int(need[u]), replace=False, p=p)
            extra.append(u * n + np.asarray(picked, dtype=np.int64))
        accepted = np.sort(np.concatenate([accepted, *extra]), kind="stable")
    return accepted


def _sorted_unique(keys: I64) -> I64:
    """np.unique for int64 keys, several times faster: numpy's stable sort of integers is a radix sort."""
    ordered = np.sort(keys, kind="stable")
    if ordered.size == 0:
        return ordered
    keep = np.empty(ordered.size, dtype=bool)
    keep[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=keep[1:])
    return ordered[keep]


# ----------------------------------------------------------------------------------------------
# Progress reporting


class SeedProgress(Protocol):
    """Where `seed` reports its phases; methods may be called from a worker thread."""

    def start(self, phase: str, total: int) -> None: ...

    def advance(self, amount: int) -> None: ...

    def finish(self) -> None: ...


class NullProgress:
    """Reports nothing (tests, scripts)."""

    def start(self, phase: str, total: int) -> None:
        pass

    def advance(self, amount: int) -> None:
        pass

    def finish(self) -> None:
        pass


class RichProgress:
    """One rich progress bar per phase, kept on screen when done. Use as a context manager."""

    def __init__(self) -> None:
        self._progress = Progress(
            TextColumn("[bold]{task.description:<10}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
        )
        self._task: TaskID | None = None

    def __enter__(self) -> RichProgress:
        self._progress.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._progress.stop()

    def start(self, phase: str, total: int) -> None:
        self.finish()
        self._task = self._progress.add_task(phase, total=max(total, 1))

    def advance(self, amount: int) -> None:
        if self._task is not None:
            self._progress.advance(self._task, amount)

    def finish(self) -> None:
        if self._task is not None:
            total = self._progress.tasks[-1].total
            self._progress.update(self._task, completed=total)
            self._task = None


# ----------------------------------------------------------------------------------------------
# Loading


@dataclass(frozen=True, slots=True)
class PhaseTime:
    phase: str
    seconds: float


@dataclass(frozen=True, slots=True)
class SeedReport:
    users: int
    active_users: int
    follows: int
    posts: int
    max_followers: int
    above_50k: int
    above_10k: int
    median_following: int
    phases: tuple[PhaseTime, ...]
    fan_out: str
    notes: tuple[str, ...] = ()

    @property
    def seconds(self) -> float:
        return sum(p.seconds for p in self.phases)

    def summary(self) -> str:
        """A human-readable summary for the command line."""
        lines = [
            f"users           {self.users:>12,}  ({self.active_users:,} active)",
            f"follows         {self.follows:>12,}  (median following {self.median_following})",
            f"posts           {self.posts:>12,}",
            f"max followers   {self.max_followers:>12,}",
            f"above 50k       {self.above_50k:>12,}",
            f"above 10k       {self.above_10k:>12,}",
            "phases:",
            *(f"  {p.phase:<12} {p.seconds:8.1f} s" for p in self.phases),
            f"  {'total':<12} {self.seconds:8.1f} s",
            f"fan-out: {self.fan_out}",
            *(f"note: {note}" for note in self.notes),
        ]
        return "\n".join(lines)


class _Clock:
    """Times phases for the report and brackets them on the progress display."""

    def __init__(self, progress: SeedProgress) -> None:
        self.progress = progress
        self.phases: list[PhaseTime] = []

    @contextmanager
    def phase(self, name: str, total: int) -> Iterator[None]:
        self.progress.start(name, total)
        began = time.perf_counter()
        try:
            yield
        finally:
            self.progress.finish()
        self.phases.append(PhaseTime(name, time.perf_counter() - began))


async def seed(
    pool: asyncpg.Pool,
    params: SeedParams,
    progress: SeedProgress | None = None,
    *,
    redis: Redis | None = None,
    settings: Settings | None = None,
) -> SeedReport:
    """Generate the world for params and load it; SeedError if users exist and reset is not set.

    With `reset`, the seeded tables (and outbox, likes, blocks, mutes) are truncated first and
    the Redis keys under `settings.redis_prefix` dropped, since they describe the old world.
    Everything is loaded in one transaction: a failure leaves the database as it was.
    """
    params.check()
    clock = _Clock(progress or NullProgress())
    async with pool.acquire() as conn:
        if not params.reset and await conn.fetchval("SELECT EXISTS (SELECT 1 FROM users)"):
            raise SeedError(_NOT_EMPTY)

    with clock.phase("generating", GENERATION_STEPS):
        world = await asyncio.to_thread(generate, params, lambda: clock.progress.advance(1))

    async with pool.acquire() as conn, conn.transaction():
        if params.reset:
            # CASCADE: any table added later that references these is emptied with them.
            await conn.execute(f"TRUNCATE {', '.join(RESET_TABLES)} CASCADE")
        # Nobody signs up between the check and the load.
        await conn.execute("LOCK TABLE users IN SHARE ROW EXCLUSIVE MODE")
        if await conn.fetchval("SELECT EXISTS (SELECT 1 FROM users)"):
            raise SeedError(_NOT_EMPTY)
        # Empty already; truncating them in this transaction is what lets COPY FREEZE write the
        # 2x20M edge rows frozen and all-visible: no hint-bit rewrite of every page on first
        # read, and index-only scans over follower lists (fan-out) from the start.
        await conn.execute("TRUNCATE follows, followers")
        await conn.execute("SET LOCAL maintenance_work_mem = '512MB'")
        deferred = await _drop_deferrable(conn)
        await _copy_users(conn, world, clock)
        with clock.phase("follows", world.follows):
            rows = _edge_rows(world, world.follow_src, world.follow_dst, None, clock.progress)
            columns = ["follower_id", "followee_id", "created_at"]
            await conn.copy_to_table("follows", source=rows, columns=columns, format="binary", freeze=True)
        with clock.phase("followers", world.follows):
            rows = _edge_rows(
                world, world.follow_dst, world.follow_src, world.followers_order, clock.progress
            )
            columns = ["followee_id", "follower_id", "created_at"]
            await conn.copy_to_table("followers", source=rows, columns=columns, format="binary", freeze=True)
        await _copy_posts(conn, world, clock)
        with clock.phase("indexes", len(deferred)):
            for statement in deferred:
                await conn.execute(statement)
                clock.progress.advance(1)

    # Statistics for the planner, and the visibility map for users and posts (the edge tables
    # were frozen by COPY, so vacuum skips their pages).
    with clock.phase("vacuum", len(SEEDED_TABLES)):
        async with pool.acquire() as conn:
            for table in SEEDED_TABLES:
                await conn.execute(f"VACUUM (ANALYZE) {table}")
                clock.progress.advance(1)

    notes: list[str] = []
    if params.reset and redis is not None and settings is not None:
        try:
            await _forget_redis(redis, settings.redis_prefix)
        except RedisError as exc:
            # The database is committed and is the truth; stale timelines only cost reads that
            # filter out posts which no longer exist, until Redis is flushed or restarted.
            log.warning("could not drop the old world's Redis keys: %s", exc)
            notes.append(f"old Redis keys not dropped ({exc}); flush Redis to clear them")
    fan_out = await _fan_out(pool, world, clock, redis=redis, settings=settings)

    followers = world.follower_count
    return SeedReport(
        users=world.users,
        active_users=world.active_users(),
        follows=world.follows,
        posts=world.posts,
        max_followers=int(followers.max(initial=0)),
        above_50k=int(np.count_nonzero(followers > 50_000)),
        above_10k=int(np.count_nonzero(followers > 10_000)),
        median_following=int(np.median(world.following_count)),
        phases=tuple(clock.phases),
        fan_out=fan_out,
        notes=tuple(notes),
    )


async def _fan_out(
    pool: asyncpg.Pool,
    world: World,
    clock: _Clock,
    *,
    redis: Redis | None,
    settings: Settings | None,
) -> str:
    """Build every active user's timeline for the freshly loaded world; a one-line note for the report.

    Seeded posts have no outbox rows, so the timelines come from one bulk computation over the
    generated arrays instead of a million fan-out jobs.
    """
    if redis is None or settings is None:
        return "skipped (no Redis given): timelines are built on first read"
    from homefeed.seed.timelines import build_timelines

    started = time.perf_counter()
    try:
        written = await build_timelines(pool, redis, world, settings, clock.progress)
    except RedisError as exc:
        # The database is loaded and is the truth; each timeline is built on its owner's first read.
        log.warning("timelines not built, Redis unavailable: %s", exc)
        return f"skipped (Redis unavailable: {exc}): timelines are built on first read"
    finally:
        clock.phases.append(PhaseTime("fan-out", time.perf_counter() - started))
    return f"{written:,} timelines built"


async def _forget_redis(redis: Redis, prefix: str) -> None:
    """Drop every key under the prefix: it is derived from the world just replaced."""
    batch: list[bytes] = []
    async for key in redis.scan_iter(match=f"{prefix}:*", count=1000):
        batch.append(key)
        if len(batch) >= 1000:
            await redis.unlink(*batch)
            batch.clear()
    if batch:
        await redis.unlink(*batch)


async def _drop_deferrable(conn: asyncpg.pool.PoolConnectionProxy) -> list[str]:
    """Drop the foreign keys and secondary indexes of the big tables; the statements to restore them.

    Per-row foreign-key triggers and random-order index inserts dominate a bulk load; checking
    a foreign key once over the whole table and building an index by sorting are far cheaper.
    Primary keys stay: rows arrive in primary-key order, so those are append-only. Definitions
    are read from the catalog, so indexes a later migration adds are handled too.
    """
    tables = list(_BULK_TABLES)
    fkeys = await conn.fetch(
        """SELECT c.conrelid::regclass::text AS tbl, format('%I', c.conname) AS name,
                  pg_get_constraintdef(c.oid) AS def
           FROM pg_constraint c
           WHERE c.contype = 'f' AND c.conrelid IN (SELECT unnest($1::text[])::regclass)
           ORDER BY c.conrelid::regclass::text, c.conname""",
        tables,
    )
    indexes = await conn.fetch(
        """SELECT i.indexrelid::regclass::text AS name, pg_get_indexdef(i.indexrelid) AS def
           FROM pg_index i
           WHERE i.indrelid IN (SELECT unnest($1::text[])::regclass)
             AND NOT i.indisprimary
             AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)
           ORDER BY 1""",
        tables,
    )
    for fk in fkeys:
        await conn.execute(f"ALTER TABLE {fk['tbl']} DROP CONSTRAINT {fk['name']}")
    for index in indexes:
        await conn.execute(f"DROP INDEX {index['name']}")
    restore = [str(index["def"]) for index in indexes]
    restore += [f"ALTER TABLE {fk['tbl']} ADD CONSTRAINT {fk['name']} {fk['def']}" for fk in fkeys]
    return restore


def _pg_time(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


async def _copy_users(conn: asyncpg.pool.PoolConnectionProxy, world: World, clock: _Clock) -> None:
    columns = [
        "id", "handle", "display_name", "password_hash", "created_at", "last_seen_at",
        "follower_count", "following_count",
    ]  # fmt: skip
    chunk = 20_000
    with clock.phase("users", world.users):
        for lo in range(0, world.users, chunk):
            hi = min(lo + chunk, world.users)
            records = [
                (
                    int(world.user_ids[u]),
                    world.handle(u),
                    world.display_name(u),
                    SEEDED_PASSWORD_HASH,
                    _pg_time(int(world.user_created_ms[u])),
                    _pg_time(int(world.user_last_seen_ms[u])),
                    int(world.follower_count[u]),
                    int(world.following_count[u]),
                )
                for u in range(lo, hi)
            ]
            await conn.copy_records_to_table("users", records=records, columns=columns)
            clock.progress.advance(hi - lo)


async def _copy_posts(conn: asyncpg.pool.PoolConnectionProxy, world: World, clock: _Clock) -> None:
    chunk = 100_000
    with clock.phase("posts", world.posts):
        for lo in range(0, world.posts, chunk):
            hi = min(lo + chunk, world.posts)
            authors = world.user_ids[world.post_author[lo:hi]].tolist()
            ids = world.post_ids[lo:hi].tolist()
            records = [(authors[i], ids[i], world.post_text(lo + i)) for i in range(hi - lo)]
            await conn.copy_records_to_table("posts", records=records, columns=["author_id", "id", "text"])
            clock.progress.advance(hi - lo)


# Binary COPY: signature, flags, header extension length; a field count of -1 ends the data.
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + (0).to_bytes(4, "big") + (0).to_bytes(4, "big")
_COPY_TRAILER = (-1).to_bytes(2, "big", signed=True)
# One row of (bigint, bigint, timestamptz): field count, then (length, value) per field.
_EDGE_ROW = np.dtype(
    [("n", ">i2"), ("l1", ">i4"), ("a", ">i8"), ("l2", ">i4"), ("b", ">i8"), ("l3", ">i4"), ("t", ">i8")]
)


async def _edge_rows(
    world: World, a: I64, b: I64, order: I64 | None, progress: SeedProgress, chunk: int = 500_000
) -> AsyncIterator[bytes]:
    """Binary COPY data for follow edges as rows (user id a, user id b, follow time), in `order`.

    Built by numpy a chunk at a time.
    asyncpg's record encoder handles ~1M rows/s in Python; these buffers are built at memory
    speed, leaving the server's insert as the only real cost.
    """
    yield _COPY_HEADER
    for lo in range(0, a.shape[0], chunk):
        hi = min(lo + chunk, a.shape[0])
        pick = order[lo:hi] if order is not None else slice(lo, hi)
        rows = np.empty(hi - lo, dtype=_EDGE_ROW)
        rows["n"] = 3
        rows["l1"] = 8
        rows["a"] = world.user_ids[a[pick]]
        rows["l2"] = 8
        rows["b"] = world.user_ids[b[pick]]
        rows["l3"] = 8
        rows["t"] = (world.follow_ms[pick] - _PG_EPOCH_MS) * 1000
        yield rows.tobytes()
        progress.advance(hi - lo)
    yield _COPY_TRAILER


# ----------------------------------------------------------------------------------------------
# Command-line entry


async def seed_from_settings(settings: Settings, params: SeedParams, progress: SeedProgress) -> SeedReport:
    """Open a pool and a Redis client for settings (URLs set), seed, close them."""
    assert settings.database_url and settings.redis_url
    pool = await create_pool(settings.database_url, min_size=1, max_size=2)
    redis = Redis.from_url(settings.redis_url)
    try:
        return await seed(pool, params, progress, redis=redis, settings=settings)
    finally:
        await redis.aclose()
        await pool.close()
