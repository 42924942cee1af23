"""Bounded id lists in Redis: home timelines and pulled authors' recent lists, read and rewritten.

Each list is one key holding the encoding of encoding.py. Fan-out extends lists with a
plain `APPEND` (see bulk_writer.py): O(1) on the server, no script. A list that grows
past its bound plus slack is rewritten here to its newest `size` ids, raising its floor
to the oldest kept. Rewrites (rebuild, backfill, removal, trim) are optimistic
transactions on the one key (WATCH), so a concurrent append is never lost. Every
operation touches a single key.

A key so hot that its rewrite keeps losing the race is dropped instead of retried forever:
the lists are a cache, a missing list is rebuilt from PostgreSQL by the next read, and no
id is lost that way.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from redis.exceptions import WatchError

from homefeed.feed.metrics import LIST_REWRITE_GIVEUPS
from homefeed.feed.redis_client import RedisClient
from homefeed.feed.timeline.encoding import Blob, bounded, built, decode, encode, max_bytes

BOTTOM = 0  # the id a read reports after the last entry of a list that holds all history
REWRITE_ATTEMPTS = 32  # optimistic tries of one rewrite before the list is dropped
_BACKOFF_CAP = 0.02  # seconds: the most one retry waits (jittered), so a rewrite yields to appends

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ListRead:
    """What one read of a list found."""

    complete: bool  # the list exists and was built by a rebuild
    ids: list[int]  # newest first, below the cursor; ends with BOTTOM when nothing older exists
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


def below(blob: Blob, before: int | None, limit: int, ttl: int) -> ListRead:
    """The newest `limit` ids of a list below `before`, as a read reports them."""
    end = len(blob.ids) if before is None else int(np.searchsorted(blob.ids, before, side="left"))
    start = max(0, end - limit)
    ids: list[int] = blob.ids[start:end].tolist()
    ids.reverse()
    if start == 0 and blob.whole and len(ids) < limit:
        ids.append(BOTTOM)
    return ListRead(complete=blob.built, ids=ids, ttl=ttl, limit=limit)


class IdLists:
    """Reads and rewrites bounded id lists of `size` ids (plus slack for appends)."""

    def __init__(self, redis: RedisClient, size: int) -> None:
        self._redis = redis
        self.size = size

    @property
    def max_bytes(self) -> int:
        """Past this length an appended-to list is rewritten to its newest `size` ids."""
        return max_bytes(self.size)

    async def read(self, queries: Sequence[ListQuery]) -> list[ListRead]:
        """Several lists in one pipelined round trip."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for q in queries:
                pipe.get(q.key)
                pipe.ttl(q.key)
            replies = await pipe.execute()
        return [
            below(decode(replies[2 * i]), q.before, q.limit, int(replies[2 * i + 1]))
            for i, q in enumerate(queries)
        ]

    async def rebuild(self, key: str, ids: Sequence[int], ttl: int, *, whole_history: bool) -> None:
        """Merge ids into a list and mark it BUILT, complete down to its oldest id (or all history).

        Entries written meanwhile (fan-out racing the rebuild) are kept by the merge.
        """
        fresh = built(np.unique(np.asarray(ids, dtype=np.int64)), whole_history=whole_history)

        def merged(old: Blob) -> Blob:
            return bounded(fresh.with_ids(np.union1d(old.ids, fresh.ids)), self.size)

        await self._rewrite(key, merged, ttl=ttl)

    async def add(self, key: str, ids: Sequence[int], ttl: int, *, more_before: bool) -> None:
        """Merge ids into one list (a backfill), keeping it bounded.

        `more_before` says the source has older ids than these, so a list holding all history
        now only vouches down to the oldest of them. A missing list is created without a
        header (untrusted). Ids below a built list's floor are left out: the list does not
        vouch for that range, PostgreSQL does.
        """
        if not ids:
            return
        new = np.asarray(ids, dtype=np.int64)

        def merged(old: Blob) -> Blob:
            floor = max(old.floor, int(new.min())) if more_before and old.built else old.floor
            return bounded(Blob(old.flags, floor, old.ids).with_ids(np.union1d(old.ids, new)), self.size)

        await self._rewrite(key, merged, ttl=ttl, only_new_ttl=True)

    async def remove(self, key: str, ids: Sequence[int]) -> None:
        """Remove ids from one list (a missing list stays missing); the floor stays where it was."""
        if ids:
            gone = np.asarray(ids, dtype=np.int64)
            await self._rewrite(key, lambda old: old.with_ids(np.setdiff1d(old.ids, gone)), create=False)

    async def trim(self, key: str) -> None:
        """Rewrite a list that appends pushed past its bound: sorted, distinct, newest `size` ids."""
        await self._rewrite(key, lambda old: bounded(old, self.size), create=False)

    async def expire(self, key: str, ttl: int) -> None:
        """Extend a list's life."""
        await self._redis.expire(key, ttl)

    async def _rewrite(
        self,
        key: str,
        change: Callable[[Blob], Blob],
        *,
        ttl: int | None = None,
        only_new_ttl: bool = False,
        create: bool = True,
    ) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            for attempt in range(REWRITE_ATTEMPTS):
                try:
                    await pipe.watch(key)
                    raw = await pipe.get(key)
                    assert raw is None or isinstance(raw, bytes)
                    if raw is None and not create:
                        await pipe.unwatch()  # type: ignore[no-untyped-call]
                        return
                    new = change(decode(raw))
                    pipe.multi()  # type: ignore[no-untyped-call]
                    if ttl is not None and not (only_new_ttl and raw is not None):
                        pipe.set(key, encode(new), ex=ttl)
                    else:
                        pipe.set(key, encode(new), keepttl=True)
                    await pipe.execute()
                    return
                except WatchError:
                    # An append landed meanwhile: merge again, after a jittered pause that
                    # grows with the tries, so a burst of appends can pass.
                    await asyncio.sleep(random.uniform(0, min(_BACKOFF_CAP, 0.0005 * 2**attempt)))
        # Still losing the race: drop the list. Appends after the DEL start an untrusted list,
        # which reads do not vouch for, so the next read rebuilds it from PostgreSQL.
        await self._redis.delete(key)
        LIST_REWRITE_GIVEUPS.inc()
        log.warning("dropped list %s after %d contended rewrites; a read rebuilds it", key, REWRITE_ATTEMPTS)
