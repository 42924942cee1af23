"""PostgreSQL streaming replicas: which server may answer a read that tolerates lag.

Rules that keep replica reads correct (docs/design.md, "Reads on replicas"):

- **Own writes.** After a user's write commits, the primary's WAL position (LSN) is kept
  in Redis under the user (so every API process knows), for longer than a usable replica
  can lag. A replica serves that user only once it has replayed that LSN.
- **Hiding writes.** A write that hides a post from *other* users (a delete, a block)
  raises one shared LSN mark the same way: until a replica has replayed it, nobody reads
  there, so no replica shows a post the primary already hides. That mark never expires:
  when it is missing, Redis lost it (a flush, a failover), and it is set again to the
  primary's position, which covers every mark lost with it.
- **Nothing dropped.** The visibility read checks that the replica has every candidate
  post it was handed (ids from Redis may be newer than the replica). The pull query
  (Redis cold or down, history past the timeline) checks that the replica had replayed
  the last write of every author the viewer follows there. If not, the primary answers.
- **Nothing stored short.** A timeline rebuilt from a replica is kept in Redis, so it is
  built only on a replica that has replayed the primary's position as of the rebuild's
  start (waiting for it briefly); else on the primary.

A replica that is down, or further behind than `replica_max_lag_ms`, is skipped. Each
skip is counted by reason (homefeed_replica_skips); reads served by a replica are counted
by read, and each replica's lag is a gauge.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import TypeVar, cast

import asyncpg
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisError

from homefeed.feed.breaker import within
from homefeed.feed.metrics import REPLICA_LAG, REPLICA_READS, REPLICA_SKIPS
from homefeed.feed.records import User
from homefeed.feed.redis_client import RedisClient
from homefeed.feed.store.pool import POOL_CLOSE_SECONDS, close_pool, create_pool
from homefeed.feed.store.pull import pull_ids, pull_ids_with_authors, timeline_ids
from homefeed.feed.store.users import Users
from homefeed.feed.store.visible import NotReplicated, VisibleReads
from homefeed.feed.timeline.reads import RedisReads

log = logging.getLogger(__name__)
T = TypeVar("T")

_PRIMARY_LSN = "SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::bigint"
# A server that is not in recovery (a promoted replica) has no replay position: its own is current.
_REPLAYED_LSN = """
SELECT (CASE WHEN pg_is_in_recovery() THEN coalesce(pg_last_wal_replay_lsn(), '0/0'::pg_lsn)
             ELSE pg_current_wal_lsn() END - '0/0'::pg_lsn)::bigint"""
# Raise a mark, never lower it (two writes of one user may finish out of order), and keep it
# alive (ARGV[2] ms; 0: the mark never expires).
_RAISE = """
local now = tonumber(redis.call('GET', KEYS[1]) or '0')
local ttl = tonumber(ARGV[2])
if tonumber(ARGV[1]) > now then
    if ttl > 0 then
        redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl)
    else
        redis.call('SET', KEYS[1], ARGV[1])
    end
elseif ttl > 0 then
    redis.call('PEXPIRE', KEYS[1], ttl)
end
return 1
"""
PROBE_SECONDS = 0.25
PROBE_TIMEOUT = 1.0
# A rebuild waits this long at most for a replica to replay the primary's position.
REBUILD_WAIT = 0.1
REBUILD_POLL = 0.005
# Past this many followed authors, their marks are not read (one MGET of them all): the primary answers.
MAX_MARKED_AUTHORS = 10_000
# A read of the marks gives up after this (Redis hung); after a failure, they are not asked for
# this long, and the pull query uses a replica only once it has the primary's current position.
MARKS_TIMEOUT = 0.25
MARKS_RETRY = 1.0
SKIP_DOWN = REPLICA_SKIPS.labels("down")
SKIP_BEHIND = REPLICA_SKIPS.labels("behind")
SKIP_UNREPLAYED = REPLICA_SKIPS.labels("unreplayed")
SKIP_MISSING = REPLICA_SKIPS.labels("missing")
SKIP_ERROR = REPLICA_SKIPS.labels("error")
SKIP_NO_MARKS = REPLICA_SKIPS.labels("marks_unavailable")
SKIP_WIDE = REPLICA_SKIPS.labels("wide")
READ_VISIBLE = REPLICA_READS.labels("visible")
READ_PULL = REPLICA_READS.labels("pull")
READ_REBUILD = REPLICA_READS.labels("rebuild")
READ_AUTHORS = REPLICA_READS.labels("authors")
_FAILED = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError)


@dataclass
class Replica:
    """One replica: its pool, its visibility reads and what the last probe saw."""

    index: int
    pool: asyncpg.Pool
    visible: VisibleReads
    replayed: int = 0  # LSN (bytes) replayed as of the last probe; only ever grows
    lag: float = math.inf  # seconds behind the primary as of the last probe
    probed: float = -math.inf  # when (monotonic) that probe answered
    up: bool = False

    def behind(self, now: float) -> float:
        """How far behind it may be now: the probe's lag plus the probe's age (probes can stall)."""
        return self.lag + (now - self.probed)


@dataclass
class LsnHistory:
    """The primary's LSN over the last while: how far back a replica's position is, in seconds."""

    keep: float
    points: deque[tuple[float, int]] = field(default_factory=deque)

    def add(self, at: float, lsn: int) -> None:
        self.points.append((at, lsn))
        while len(self.points) > 2 and self.points[1][0] < at - self.keep:
            self.points.popleft()

    def lag(self, now: float, replayed: int) -> float:
        """Seconds since the primary first passed `replayed` (0: caught up with the last sample)."""
        if not self.points or replayed >= self.points[-1][1]:
            return 0.0
        for at, lsn in self.points:
            if lsn > replayed:
                return now - at
        return now - self.points[0][0]  # pragma: no cover - the last point is always ahead here


class Replicas:
    """Chooses a replica for a viewer's read and records the writes replicas must have replayed."""

    def __init__(
        self,
        primary: asyncpg.Pool,
        redis: RedisClient,
        prefix: str,
        replicas: Sequence[asyncpg.Pool],
        *,
        max_lag_ms: int,
    ) -> None:
        self._primary = primary
        self._redis = redis
        self._prefix = prefix
        self.max_lag = max_lag_ms / 1000
        # A mark outlives any replica that could still be chosen without having replayed it.
        self.mark_ttl_ms = 2 * max_lag_ms + 5000
        self.replicas = [
            Replica(i, pool, VisibleReads(pool, checked=True)) for i, pool in enumerate(replicas)
        ]
        self._samples = LsnHistory(keep=2 * self.max_lag + 1)
        self._raise = redis.register_script(_RAISE)
        self._prober: asyncio.Task[None] | None = None
        self._next = 0
        # The read path's lean connection to a single server (see use_lean), else redis-py.
        self._lean: RedisReads | None = None
        # Until when the marks are not asked for (Redis failed a read of them).
        self._marks_down_until = 0.0
        # The primary's position as read for the callers that asked in one turn of the loop.
        self._position_read: asyncio.Future[int] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @classmethod
    async def open(
        cls, primary: asyncpg.Pool, redis: RedisClient, prefix: str, urls: Sequence[str], *, max_lag_ms: int
    ) -> Replicas:
        """Open a pool per replica URL (a replica down at start-up is skipped until it answers)."""
        pools = [await create_pool(url, min_size=0) for url in urls]
        return cls(primary, redis, prefix, pools, max_lag_ms=max_lag_ms)

    def use_lean(self, reads: RedisReads) -> None:
        """Read the marks on the read path's own pipelined connection (a single server's): through
        redis-py, the marks' MGET cost a read more client CPU than the timeline's GET beside it."""
        self._lean = reads

    def _user_key(self, user_id: int) -> str:
        return f"{self._prefix}:lsn:{user_id}"

    @property
    def _hide_key(self) -> str:
        return f"{self._prefix}:lsn:hide"

    # ---- marks ---------------------------------------------------------------------------

    async def wrote(self, user_id: int, *, hides: bool = False) -> None:
        """Record that a write by `user_id` has committed (`hides`: it hides posts from others)."""
        # The commit's own position: read after it, so a replica that has replayed it has the write.
        lsn = await self._primary.fetchval(_PRIMARY_LSN)
        try:
            # Both marks in one round trip (a pipeline; on a cluster each key goes to its master).
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.eval(_RAISE, 1, self._user_key(user_id), lsn, self.mark_ttl_ms)
                if hides:
                    pipe.eval(_RAISE, 1, self._hide_key, lsn, 0)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            # Without Redis no process can read the marks either, so reads go to the primary
            # (marks_unavailable); a mark lost as Redis comes back is the one gap, logged.
            log.warning("replica read mark not recorded for user %s: %s", user_id, exc)

    async def _needed_or_skip(self, viewer: int | None, authors: Sequence[int]) -> int | None:
        """`needed`, or None (the skip counted) when the read must go to the primary: too many
        authors to mark, or marks unreadable."""
        if len(authors) > MAX_MARKED_AUTHORS:
            SKIP_WIDE.inc()
            return None
        needed = await self.needed(viewer, authors)
        if needed is None:
            SKIP_NO_MARKS.inc()
        return needed

    async def needed(self, viewer: int | None, authors: Sequence[int] = ()) -> int | None:
        """The LSN a replica must have replayed to answer this viewer (None: anonymous) and show
        these authors' posts in full; None if the marks cannot be read."""
        if time.monotonic() < self._marks_down_until:
            return None
        keys = [self._hide_key, *(self._user_key(a) for a in authors)]
        if viewer is not None:
            keys.append(self._user_key(viewer))
        try:
            values: list[bytes | str | None]
            if self._lean is not None:
                reply = await within(MARKS_TIMEOUT, self._lean.call(b"MGET", *(k.encode() for k in keys)))
                values = cast("list[bytes | str | None]", reply)
            elif isinstance(self._redis, RedisCluster):
                # The keys live in different slots: read each from its own master.
                values = await within(MARKS_TIMEOUT, self._redis.mget_nonatomic(keys))
            else:
                values = await within(MARKS_TIMEOUT, self._redis.mget(keys))
            floor = int(values[0]) if values[0] is not None else await self._refloor()
        except (RedisError, OSError):
            self._marks_down_until = time.monotonic() + MARKS_RETRY
            return None
        except (asyncpg.PostgresError, asyncpg.InterfaceError):
            return None
        return max(floor, max((int(v) for v in values[1:] if v is not None), default=0))

    async def _refloor(self) -> int:
        """The hiding mark is gone (it never expires): Redis lost marks. Set it to the primary's
        position now, which is past every mark lost, so no replica is trusted until it replays it."""
        lsn = int(await self._primary.fetchval(_PRIMARY_LSN))
        if not await within(MARKS_TIMEOUT, self._redis.set(self._hide_key, lsn, nx=True)):
            return int(await within(MARKS_TIMEOUT, self._redis.get(self._hide_key)) or lsn)
        log.warning("replica read marks were lost (Redis flushed or failed over): replicas wait for %d", lsn)
        return lsn

    async def primary_lsn(self) -> int:
        """The primary's WAL position now."""
        return int(await self._primary.fetchval(_PRIMARY_LSN))

    async def _position(self) -> int:
        """The primary's position, read after this call began: callers of one turn of the loop
        share one read (a read already in flight may predate a caller's write, so none joins it)."""
        if self._position_read is None:
            loop = asyncio.get_running_loop()
            future: asyncio.Future[int] = loop.create_future()
            self._position_read = future

            async def read() -> None:
                self._position_read = None  # later callers start their own
                try:
                    future.set_result(await self.primary_lsn())
                except Exception as exc:
                    future.set_exception(exc)

            loop.call_soon(lambda: self._spawn(read()))
        return await asyncio.shield(self._position_read)

    def _spawn(self, work: Coroutine[object, object, None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ---- probing -------------------------------------------------------------------------

    async def probe(self) -> None:
        """Read the primary's position and each replica's replayed position now."""
        now = time.monotonic()
        try:
            self._samples.add(now, int(await self._primary.fetchval(_PRIMARY_LSN, timeout=PROBE_TIMEOUT)))
        except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
            log.warning("replica probe: primary position unknown: %s", exc)
            return
        for replica in self.replicas:
            try:
                replayed = int(await replica.pool.fetchval(_REPLAYED_LSN, timeout=PROBE_TIMEOUT))
            except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                if replica.up:
                    log.warning("replica %d is down: %s", replica.index, exc)
                replica.up = False
                replica.lag = math.inf
                REPLICA_LAG.labels(str(replica.index)).set(math.inf)
                continue
            replica.up = True
            replica.replayed = max(replica.replayed, replayed)
            replica.probed = time.monotonic()
            replica.lag = self._samples.lag(replica.probed, replica.replayed)
            REPLICA_LAG.labels(str(replica.index)).set(replica.lag)

    def start(self) -> None:
        """Probe in the background from now on (idempotent; needs a running event loop)."""
        if self._prober is None or self._prober.done():
            self._prober = asyncio.ensure_future(self._probe_forever())

    async def _probe_forever(self) -> None:
        while True:
            try:
                await self.probe()
            except Exception:  # pragma: no cover - a probe must never stop probing
                log.exception("replica probe failed")
            await asyncio.sleep(PROBE_SECONDS)

    # ---- reads ---------------------------------------------------------------------------

    async def choose(self, viewer: int) -> Replica | None:
        """A replica that may answer this viewer's read now, or None (ask the primary)."""
        if not self.replicas:
            return None  # nothing to choose from: the marks are not worth a Redis round trip
        needed = await self.needed(viewer)
        if needed is None:
            SKIP_NO_MARKS.inc()
            return None
        return self._pick(needed)

    def _pick(self, needed: int = 0) -> Replica | None:
        """The next replica (round robin) that is up, within the lag limit and has replayed
        `needed`; None if there is none (the skip counted) or none is configured (nothing
        counted, no probing started)."""
        if not self.replicas:
            return None
        self.start()
        n = len(self.replicas)
        reason = SKIP_DOWN
        now = time.monotonic()
        for step in range(n):
            replica = self.replicas[(self._next + step) % n]
            if not replica.up:
                continue
            if replica.behind(now) > self.max_lag:
                reason = SKIP_BEHIND
                continue
            if replica.replayed < needed:
                reason = SKIP_UNREPLAYED
                continue
            self._next = (replica.index + 1) % n  # round robin among the fit ones
            return replica
        reason.inc()
        return None

    def _failed(self, replica: Replica, exc: BaseException) -> None:
        # Down since the last probe: skipped until a probe sees it answer again.
        log.warning("replica %d failed a read: %s", replica.index, exc)
        replica.up = False
        SKIP_ERROR.inc()

    async def visible_rows(self, viewer: int, ids: Sequence[int], limit: int) -> list[asyncpg.Record] | None:
        """The visibility read on a replica fit for this viewer; None: the primary must answer."""
        replica = await self.choose(viewer)
        if replica is None:
            return None
        try:
            rows = await replica.visible.rows(viewer, ids, limit)
        except NotReplicated:
            SKIP_MISSING.inc()
            return None
        except _FAILED as exc:
            self._failed(replica, exc)
            return None
        READ_VISIBLE.inc()
        return rows

    async def pull_ids(self, viewer: int, before: int | None, limit: int) -> list[int] | None:
        """The pull query (`store.pull.pull_ids`) on a replica; None: the primary must answer.

        The replica's answer stands only if, before it ran, the replica had replayed the
        viewer's own last write, the last hiding write, and the last write of every author
        the viewer follows there: then no post of theirs is missing and none is stale. The
        follows come from the replica, which is right once it has the viewer's own writes
        (a follow is the follower's write; a block that ends one is a hiding write).

        While Redis does not answer (the marks unknown), the replica answers only once it has
        replayed the primary's position as of this read: then it is as current as the primary.
        """
        replica = self._pick()
        if replica is None:
            return None
        if time.monotonic() < self._marks_down_until:
            return await self._pull_current(replica, viewer, before, limit)
        replayed = replica.replayed  # a lower bound of the statement's snapshot
        try:
            ids, authors = await pull_ids_with_authors(replica.pool, viewer, before, limit)
        except _FAILED as exc:
            self._failed(replica, exc)
            return None
        needed = await self._needed_or_skip(viewer, authors)
        if needed is None:
            return None
        if replayed < needed:
            SKIP_UNREPLAYED.inc()
            return None
        READ_PULL.inc()
        return ids

    async def _pull_current(
        self, replica: Replica, viewer: int, before: int | None, limit: int
    ) -> list[int] | None:
        """The pull query on a replica once it has the primary's position as of now (no marks)."""
        try:
            since = await self._position()
        except _FAILED:
            return None  # the primary's own failure: it answers (or fails) the read itself
        try:
            if not await self._replayed(replica, since):
                SKIP_UNREPLAYED.inc()
                return None
            ids = await pull_ids(replica.pool, viewer, before, limit)
        except _FAILED as exc:
            self._failed(replica, exc)
            return None
        READ_PULL.inc()
        return ids

    async def timeline_ids(self, viewer: int, since: int, limit: int) -> list[int] | None:
        """A cold rebuild's ids (`store.pull.timeline_ids`) on a replica that has replayed `since`.

        `since` is the primary's position as the rebuild starts. Posts committed before it are
        then on the replica; posts committed after it reach the timeline by fan-out (the reader
        was marked active first), which the rebuild merges with. A replica not there within
        REBUILD_WAIT is skipped: the result is stored, so a short one would stay short.
        """
        replica = self._pick()
        if replica is None:
            return None
        try:
            if not await self._replayed(replica, since):
                SKIP_UNREPLAYED.inc()
                return None
            ids = await timeline_ids(replica.pool, viewer, limit)
        except _FAILED as exc:
            self._failed(replica, exc)
            return None
        READ_REBUILD.inc()
        return ids

    async def _replayed(self, replica: Replica, lsn: int) -> bool:
        """Whether the replica has replayed `lsn`, asking it again for up to REBUILD_WAIT."""
        deadline = time.monotonic() + REBUILD_WAIT
        while replica.replayed < lsn:
            if time.monotonic() >= deadline:
                return False
            # Asked on its own: the next statement's snapshot then includes what it reports.
            replayed = int(await replica.pool.fetchval(_REPLAYED_LSN, timeout=PROBE_TIMEOUT))
            replica.replayed = max(replica.replayed, replayed)
            if replica.replayed < lsn:
                await asyncio.sleep(REBUILD_POLL)
        return True

    async def run(
        self,
        read: str,
        viewer: int | None,
        authors: Sequence[int],
        work: Callable[[asyncpg.Pool], Awaitable[T]],
    ) -> T | None:
        """`work` on a replica that has replayed the viewer's and these authors' last writes and
        the last hiding write; None (nothing run, or it failed there): ask the primary."""
        if not self.replicas:
            return None  # as in choose: no marks read
        needed = await self._needed_or_skip(viewer, authors)
        if needed is None:
            return None
        replica = self._pick(needed)
        if replica is None:
            return None
        try:
            result = await work(replica.pool)
        except _FAILED as exc:
            self._failed(replica, exc)
            return None
        REPLICA_READS.labels(read).inc()
        return result

    async def users(self, ids: Sequence[int]) -> list[User | None] | None:
        """Users by id on a replica, aligned with ids (None where the replica has none yet);
        None: no replica may answer. For what never changes once written (feed authors)."""
        replica = self._pick()
        if replica is None:
            return None
        try:
            found = await Users(replica.pool).by_ids(ids)
        except _FAILED as exc:
            self._failed(replica, exc)
            return None
        READ_AUTHORS.inc()
        return found

    async def close(self) -> None:
        """Stop probing; close the replicas' reads and pools."""
        if self._prober is not None:
            self._prober.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._prober
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for replica in self.replicas:
            await replica.visible.close()
            await close_pool(replica.pool, POOL_CLOSE_SECONDS)
