"""Bounded id lists in Redis: home timelines and pulled authors' recent lists.

A list holds post ids (see keys.py for the encoding). A rebuild adds a
sentinel, which means "this list is complete down to its oldest entry"; a list
without one (new, expired, flushed, or created by a write that arrived before
the rebuild) is treated as missing and rebuilt. Every write merges (ZADD), so
writes racing a rebuild are kept, and every write is idempotent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from redis.asyncio import Redis

from homefeed.feed.keys import BOTTOM, SENTINEL, decode_id, encode_id


@dataclass(frozen=True, slots=True)
class ListRead:
    """What one read of a list found."""

    complete: bool  # the list exists and was built by a rebuild
    ids: list[int]  # newest first, below the cursor
    ttl: int  # seconds to expiry; -1 none; -2 missing
    limit: int  # how many were asked for

    @property
    def exhausted(self) -> bool:
        """Whether the list holds nothing more below the last id read."""
        return len(self.ids) < self.limit


@dataclass(frozen=True, slots=True)
class ListQuery:
    key: str
    before: int | None
    limit: int


class IdLists:
    """Reads and writes bounded id lists, `size` entries at most (plus the sentinel)."""

    def __init__(self, redis: Redis, size: int) -> None:
        self._redis = redis
        self.size = size

    async def read(self, queries: Sequence[ListQuery]) -> list[ListRead]:
        """Several lists in one pipelined round trip."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for q in queries:
                upper = b"(" + (encode_id(q.before) if q.before is not None else SENTINEL)
                pipe.zscore(q.key, SENTINEL)
                pipe.zrevrangebylex(q.key, upper, b"-", 0, q.limit)
                pipe.ttl(q.key)
            replies = await pipe.execute()
        reads = []
        for i, q in enumerate(queries):
            marker, members, ttl = replies[3 * i : 3 * i + 3]
            reads.append(
                ListRead(
                    complete=marker is not None,
                    ids=[decode_id(m) for m in members],
                    ttl=int(ttl),
                    limit=q.limit,
                )
            )
        return reads

    async def rebuild(self, key: str, ids: Sequence[int], ttl: int, *, whole_history: bool) -> None:
        """Merge ids and the sentinel into a list, trim it, set its expiry: atomically, one key.

        `whole_history` says ids are everything there is, which lets readers stop at the
        list's end instead of asking PostgreSQL for more.
        """
        members = {encode_id(i): 0 for i in ids}
        members[SENTINEL] = 0
        if whole_history:
            members[BOTTOM] = 0
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.zadd(key, members)
            pipe.zremrangebyrank(key, 0, -(self.size + 2))
            pipe.expire(key, ttl)
            await pipe.execute()

    async def add(self, key: str, ids: Sequence[int], ttl: int, *, more_before: bool) -> None:
        """Merge ids into one list (a backfill), keeping it bounded.

        `more_before` says the source has older ids than these, so the list can no longer
        claim to hold all history.
        """
        if not ids and not more_before:
            return
        async with self._redis.pipeline(transaction=True) as pipe:
            if more_before:
                pipe.zrem(key, BOTTOM)
            if ids:
                pipe.zadd(key, {encode_id(i): 0 for i in ids})
            pipe.zremrangebyrank(key, 0, -(self.size + 2))
            pipe.expire(key, ttl, nx=True)
            await pipe.execute()

    async def remove(self, key: str, ids: Sequence[int]) -> None:
        """Remove ids from one list."""
        if ids:
            await self._redis.zrem(key, *[encode_id(i) for i in ids])

    async def expire(self, key: str, ttl: int) -> None:
        """Extend a list's life."""
        await self._redis.expire(key, ttl)

    async def drop(self, key: str) -> None:
        """Delete a list."""
        await self._redis.delete(key)
