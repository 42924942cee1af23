"""Ranked-order snapshots in Redis: what a viewer's first RANKED page computed, for later pages.

One string per snapshot under the viewer's hash tag (one Redis Cluster slot per user): a header
(format, the floor below which the feed continues in LATEST order, the count), the post ids and
their scores. It expires after HOMEFEED_RANKED_SNAPSHOT_SECONDS; a cursor naming a snapshot that
is gone is refused (the client starts from the first page).
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from homefeed.feed.ranking.features import F64, I64
from homefeed.feed.redis_client import RedisClient

_HEADER = struct.Struct("<BqI")
_FORMAT = 1
# No candidates: the feed continues in LATEST order from the newest post.
NO_FLOOR = 2**63 - 1


@dataclass(frozen=True)
class Snapshot:
    """A ranked order: ids and scores, best first, and where LATEST order takes over."""

    ids: I64
    scores: F64
    floor: int

    def encode(self) -> bytes:
        """The stored form."""
        return (
            _HEADER.pack(_FORMAT, self.floor, len(self.ids))
            + self.ids.astype("<i8").tobytes()
            + self.scores.astype("<f8").tobytes()
        )

    @classmethod
    def decode(cls, raw: bytes) -> Snapshot:
        """The snapshot from its stored form; ValueError if it is not one."""
        if len(raw) < _HEADER.size:
            raise ValueError("short snapshot")
        version, floor, count = _HEADER.unpack_from(raw)
        if version != _FORMAT or len(raw) != _HEADER.size + 16 * count:
            raise ValueError("not a snapshot of this format")
        start = _HEADER.size
        ids = np.frombuffer(raw, "<i8", count, start).astype(np.int64)
        scores = np.frombuffer(raw, "<f8", count, start + 8 * count).astype(np.float64)
        return cls(ids, scores, floor)


def name_of(viewer: int, snapshot: Snapshot) -> str:
    """The snapshot's name (cursors carry it, signed): a digest of the viewer and the content.

    The same ranking twice (same candidates, features and instant) is the same snapshot, with
    the same cursors; storing it again only renews its expiry.
    """
    digest = hashlib.blake2b(snapshot.encode(), digest_size=8, key=str(viewer).encode())
    return digest.hexdigest()


class LeanReads(Protocol):
    """The read path's own connection to Redis (timeline/reads.py, cluster_reads.py)."""

    async def get(self, key: str) -> bytes | None: ...

    async def call(self, *args: bytes) -> object: ...


class Snapshots:
    """Stores and reads snapshots under one key prefix."""

    def __init__(
        self, redis: RedisClient, prefix: str, ttl_seconds: int, reads: LeanReads | None = None
    ) -> None:
        self._redis = redis
        self._prefix = prefix
        self.ttl = ttl_seconds
        # A snapshot's SET and GET go where a LATEST page's GET goes: through redis-py each
        # cost the API more CPU than the rest of the snapshot's work.
        self._reads = reads

    def key(self, viewer: int, name: str) -> str:
        """The snapshot's key: under the viewer's hash tag."""
        return f"{self._prefix}:{{{viewer}}}:rank:{name}"

    async def put(self, viewer: int, name: str, snapshot: Snapshot) -> None:
        """Store a snapshot for its TTL."""
        key, raw = self.key(viewer, name), snapshot.encode()
        if self._reads is not None:
            await self._reads.call(b"SET", key.encode(), raw, b"EX", b"%d" % self.ttl)
        else:
            await self._redis.set(key, raw, ex=self.ttl)

    async def get(self, viewer: int, name: str) -> Snapshot | None:
        """The snapshot, or None once it has expired."""
        key = self.key(viewer, name)
        raw = await (self._reads.get(key) if self._reads is not None else self._redis.get(key))
        return (
            None if raw is None else Snapshot.decode(bytes(raw, "latin-1") if isinstance(raw, str) else raw)
        )
