"""PostgreSQL streaming replicas: which server may answer a read that tolerates lag.

Three rules keep replica reads correct (docs/design.md, "Replicas"):

- **Own writes.** After a user's write commits, the primary's WAL position (LSN) is kept
  in Redis under the user (so every API process knows), for longer than a usable replica
  can lag. A replica serves that user only once it has replayed that LSN.
- **Hiding writes.** A write that hides a post from *other* users (a delete, a block)
  raises one shared LSN mark the same way: until a replica has replayed it, nobody reads
  there, so no replica shows a post the primary already hides.
- **Nothing dropped.** A read checks that the replica has every candidate post it was
  handed (ids from Redis may be newer than the replica); if not, the primary answers.

A replica that is down, or further behind than `replica_max_lag_ms`, is skipped. Each
skip is counted by reason (homefeed_replica_skips); reads served by a replica are counted
too, and each replica's lag is a gauge.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

import asyncpg
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisError

from homefeed.feed.metrics import REPLICA_LAG, REPLICA_READS, REPLICA_SKIPS
from homefeed.feed.redis_client import RedisClient
from homefeed.feed.store.pool import create_pool
from homefeed.feed.store.visible import NotReplicated, VisibleReads

log = logging.getLogger(__name__)

_PRIMARY_LSN = "SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::bigint"
# A server that is not in recovery (a promoted replica) has no replay position: its own is current.
_REPLAYED_LSN = """
SELECT (CASE WHEN pg_is_in_recovery() THEN coalesce(pg_last_wal_replay_lsn(), '0/0'::pg_lsn)
             ELSE pg_current_wal_lsn() END - '0/0'::pg_lsn)::bigint"""
# Raise a mark, never lower it (two writes of one user may finish out of order), and keep it alive.
_RAISE = """
local now = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) > now then
    redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
else
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 1
"""
PROBE_SECONDS = 0.25
PROBE_TIMEOUT = 1.0
SKIP_DOWN = REPLICA_SKIPS.labels("down")
SKIP_BEHIND = REPLICA_SKIPS.labels("behind")
SKIP_UNREPLAYED = REPLICA_SKIPS.labels("unreplayed")
SKIP_MISSING = REPLICA_SKIPS.labels("missing")
SKIP_ERROR = REPLICA_SKIPS.labels("error")
SKIP_NO_MARKS = REPLICA_SKIPS.labels("marks_unavailable")


@dataclass
class Replica:
    """One replica: its pool, its visibility reads and what the last probe saw."""

    index: int
    pool: asyncpg.Pool
    visible: VisibleReads
    replayed: int = 0  # LSN (bytes) replayed as of the last probe; only ever grows
    lag: float = math.inf  # seconds behind the primary as of the last probe
    up: bool = False


@dataclass
class _Samples:
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
        self._samples = _Samples(keep=2 * self.max_lag + 1)
        self._raise = redis.register_script(_RAISE)
        self._prober: asyncio.Task[None] | None = None
        self._next = 0

    @classmethod
    async def open(
        cls, primary: asyncpg.Pool, redis: RedisClient, prefix: str, urls: Sequence[str], *, max_lag_ms: int
    ) -> Replicas:
        """Open a pool per replica URL (a replica down at start-up is skipped until it answers)."""
        pools = [await create_pool(url, min_size=0) for url in urls]
        return cls(primary, redis, prefix, pools, max_lag_ms=max_lag_ms)

    def _user_key(self, user_id: int) -> str:
        return f"{self._prefix}:lsn:{user_id}"

    @property
    def _hide_key(self) -> str:
        return f"{self._prefix}:lsn:hide"

    # ---- marks ---------------------------------------------------------------------------

    async def wrote(self, user_id: int, *, hides: bool = False) -> None:
        """Record that a write by `user_id` has committed (`hides`: it hides posts from others)."""
        lsn = await self._primary.fetchval(_PRIMARY_LSN)
        keys = [self._user_key(user_id)] + ([self._hide_key] if hides else [])
        try:
            for key in keys:
                await self._raise(keys=[key], args=[lsn, self.mark_ttl_ms])
        except (RedisError, OSError) as exc:
            # Without Redis no process can read the marks either, so reads go to the primary
            # (marks_unavailable); a mark lost as Redis comes back is the one gap, logged.
            log.warning("replica read mark not recorded for user %s: %s", user_id, exc)

    async def _needed(self, viewer: int) -> int | None:
        """The LSN a replica must have replayed to answer this viewer; None if unknown."""
        try:
            keys = [self._user_key(viewer), self._hide_key]
            if isinstance(self._redis, RedisCluster):
                # The two keys live in different slots: read each from its own master.
                own, hide = await self._redis.mget_nonatomic(keys)
            else:
                own, hide = await self._redis.mget(keys)
        except (RedisError, OSError):
            return None
        return max(int(own or 0), int(hide or 0))

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
            replica.lag = self._samples.lag(time.monotonic(), replica.replayed)
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
            return None
        self.start()
        needed = await self._needed(viewer)
        if needed is None:
            SKIP_NO_MARKS.inc()
            return None
        n = len(self.replicas)
        reason = SKIP_DOWN
        for step in range(n):
            replica = self.replicas[(self._next + step) % n]
            if not replica.up:
                continue
            if replica.lag > self.max_lag:
                reason = SKIP_BEHIND
                continue
            if replica.replayed < needed:
                reason = SKIP_UNREPLAYED
                continue
            self._next = (replica.index + 1) % n  # round robin among the fit ones
            return replica
        reason.inc()
        return None

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
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            # Down since the last probe: skipped until a probe sees it answer again.
            log.warning("replica %d failed a read: %s", replica.index, exc)
            replica.up = False
            SKIP_ERROR.inc()
            return None
        REPLICA_READS.inc()
        return rows

    async def close(self) -> None:
        """Stop probing; close the replicas' reads and pools."""
        if self._prober is not None:
            self._prober.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._prober
        for replica in self.replicas:
            await replica.visible.close()
            await replica.pool.close()
