"""The read bench with PostgreSQL replicas: `--replica` variants, the replicas' replay lag, blocks.

With `--replica`, each of hybrid and pull is also served as `<variant>-replica`: the same
server with `HOMEFEED_DATABASE_REPLICA_URLS` set, while every other variant runs with it
emptied, so one run measures both sides in turn (the same drift meets both) and their
ratio is of the same run.

Two things say what the replicas did while a slice ran:

- **Replay lag**, sampled every SAMPLE_SECONDS: bytes of WAL the primary has written that a
  replica has not replayed, and seconds since the primary passed the replica's position
  (the engine's own measure, `LsnHistory`, which the read path's skip rule uses).
- **Block accesses** (`blks_hit + blks_read` of the database in `pg_stat_database`) on the
  primary and on the replicas: where the database work of the slice's reads went. The
  servers publish these counters with a delay of up to a second, so a slice's figure
  includes the end of the slice before it.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import asyncpg

from homefeed.bench.stats import interpolated
from homefeed.feed.replicas import LsnHistory

SUFFIX = "-replica"
# The variants that can read from replicas, each named with SUFFIX for its replica side.
REPLICA_BASES = ("hybrid", "pull")
SAMPLE_SECONDS = 0.1
_PRIMARY_LSN = "SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::bigint"
_REPLAYED_LSN = "SELECT (coalesce(pg_last_wal_replay_lsn(), '0/0'::pg_lsn) - '0/0'::pg_lsn)::bigint"
_BLOCKS = "SELECT blks_hit + blks_read FROM pg_stat_database WHERE datname = current_database()"


def with_replica_sides(variants: Sequence[str]) -> tuple[str, ...]:
    """The variants, each of REPLICA_BASES followed by its replica side (once)."""
    out: list[str] = []
    for variant in variants:
        if variant not in out:
            out.append(variant)
        if variant in REPLICA_BASES and variant + SUFFIX not in variants:
            out.append(variant + SUFFIX)
    return tuple(out)


def base_of(variant: str) -> str:
    """The variant a replica side serves as (itself for any other)."""
    return variant.removesuffix(SUFFIX)


def reads_replicas(variant: str) -> bool:
    return variant.endswith(SUFFIX)


@dataclass
class ReplicaSlice:
    """What the replicas did during one slice."""

    lag_s: list[float] = field(default_factory=list)
    lag_bytes: list[int] = field(default_factory=list)
    primary_blocks: int = 0
    replica_blocks: int = 0


@dataclass
class ReplicaFigures:
    """A variant's replica figures over all its slices."""

    lag_p50_ms: float
    lag_p99_ms: float
    lag_max_ms: float
    lag_max_bytes: int
    samples: int
    primary_blocks: int
    replica_blocks: int

    @classmethod
    def of(cls, slices: Sequence[ReplicaSlice]) -> ReplicaFigures:
        lag_ms = [1000 * s for x in slices for s in x.lag_s]
        return cls(
            lag_p50_ms=interpolated(lag_ms, 50),
            lag_p99_ms=interpolated(lag_ms, 99),
            lag_max_ms=max(lag_ms) if lag_ms else math.nan,
            lag_max_bytes=max((b for x in slices for b in x.lag_bytes), default=0),
            samples=len(lag_ms),
            primary_blocks=sum(x.primary_blocks for x in slices),
            replica_blocks=sum(x.replica_blocks for x in slices),
        )


class ReplicaWatch:
    """Connections to the primary and each replica, for the lag samples and block counts."""

    def __init__(self, primary: asyncpg.Connection, replicas: list[asyncpg.Connection]) -> None:
        self._primary = primary
        self._replicas = replicas
        self._history = LsnHistory(keep=600.0)  # a lag past it reads as at least that

    @classmethod
    async def open(cls, primary_url: str, replica_urls: Sequence[str]) -> ReplicaWatch:
        primary = await asyncpg.connect(primary_url)
        try:
            replicas = [await asyncpg.connect(url) for url in replica_urls]
        except BaseException:
            await primary.close()
            raise
        return cls(primary, replicas)

    async def close(self) -> None:
        for conn in [self._primary, *self._replicas]:
            with contextlib.suppress(Exception):
                await conn.close()

    async def blocks(self) -> tuple[int, int]:
        """Block accesses so far: the primary's, and all replicas' together (of this database)."""
        primary = int(await self._primary.fetchval(_BLOCKS) or 0)
        replicas = 0
        for conn in self._replicas:
            replicas += int(await conn.fetchval(_BLOCKS) or 0)
        return primary, replicas

    async def sample(self, into: ReplicaSlice) -> None:
        """One lag sample per replica: the primary's position first, then each replica's."""
        primary = int(await self._primary.fetchval(_PRIMARY_LSN))
        now = time.monotonic()
        self._history.add(now, primary)
        for conn in self._replicas:
            replayed = int(await conn.fetchval(_REPLAYED_LSN))
            # Read after the primary's: a replica may have replayed past that sample.
            into.lag_bytes.append(max(0, primary - replayed))
            into.lag_s.append(self._history.lag(time.monotonic(), replayed))

    async def sample_until(self, into: ReplicaSlice, stop: asyncio.Event) -> None:
        """Sample every SAMPLE_SECONDS until `stop` is set."""
        while not stop.is_set():
            await self.sample(into)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), SAMPLE_SECONDS)
