"""Bounded id lists in Redis: home timelines and pulled authors' recent lists.

A list is one Redis string: an optional 8-byte header, then post ids as 7-byte
big-endian integers (ids < 2**53). The header is present exactly when the
length is 1 modulo 7: a flags byte (BUILT: a rebuild wrote this list) and the
list's floor, a 7-byte id. A BUILT list vouches for every post at or above its
floor; a floor of 0 means it holds all history. A list without a header (new,
or created by a write that arrived before the rebuild) vouches for nothing and
is rebuilt on read.

Fan-out appends ids with a plain `APPEND` (see bulk.py): O(1) on the server, no
script. So entries may arrive out of order, twice, or late (a slow worker, a
redone job) below the floor; readers sort, deduplicate and ignore what lies
below the floor (numpy, microseconds for 800 ids). A list that grows past its
bound plus slack is rewritten to its newest `size` ids, raising its floor to
the oldest kept. Rewrites (rebuild, backfill, removal, trim) are optimistic
transactions on the one key (WATCH), so a concurrent append is never lost.
Every operation touches a single key.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from redis.asyncio import Redis
from redis.exceptions import WatchError

from homefeed.feed.timeline.keys import ID_BYTES

BUILT = 1
HEADER_BYTES = 1 + ID_BYTES
BOTTOM = 0  # the id a read reports after the last entry of a list that holds all history

Ids = npt.NDArray[np.int64]
_EMPTY: Ids = np.zeros(0, dtype=np.int64)
_PAD = bytes(8 - ID_BYTES)
_ID_MASK = np.int64((1 << (8 * ID_BYTES)) - 1)


@dataclass(frozen=True, slots=True)
class Blob:
    """A decoded list: flags (None without a header), floor, and distinct ids at or above it, ascending."""

    flags: int | None
    floor: int
    ids: Ids

    @property
    def built(self) -> bool:
        return self.flags is not None and bool(self.flags & BUILT)

    @property
    def whole(self) -> bool:
        """Whether the list holds all history (nothing older exists)."""
        return self.built and self.floor == 0

    def with_ids(self, ids: Ids) -> Blob:
        """The same list holding ids (those below its floor are dropped)."""
        return Blob(self.flags, self.floor, ids[ids >= self.floor] if self.floor else ids)


def decode(raw: bytes | None) -> Blob:
    """Parse a stored list (None for a missing key)."""
    if not raw:
        return Blob(None, 0, _EMPTY)
    flags: int | None = None
    floor = 0
    if len(raw) % ID_BYTES == 1:
        flags, floor, start = raw[0], int.from_bytes(raw[1:HEADER_BYTES], "big"), HEADER_BYTES
    else:
        raw, start = _PAD + raw, len(_PAD)
    n = (len(raw) - start) // ID_BYTES
    # Each id is read as the 8-byte word ending with it (strides of 7 over the bytes, the word's
    # first byte belonging to what precedes it), then masked: no copy into a padded array.
    words = np.ndarray((n,), dtype=">i8", buffer=raw, offset=start - len(_PAD), strides=(ID_BYTES,))
    # Every read of a timeline decodes it whole, so each numpy call counts (each costs about
    # a microsecond whatever the length): mask while converting, and cut the floor by bisection.
    ids = np.bitwise_and(words, _ID_MASK, dtype=np.int64)
    # Appends mostly arrive in order: sort and deduplicate only when they did not.
    if n > 1 and not np.greater(ids[1:], ids[:-1]).all():
        ids.sort()
        ids = ids[np.concatenate(([True], ids[1:] != ids[:-1]))]
    if floor and n and ids[0] < floor:
        ids = ids[int(np.searchsorted(ids, floor)) :]
    return Blob(flags, floor, ids)


def encode(blob: Blob) -> bytes:
    """A list as stored: the header (if it has flags) and its ids in ascending order."""
    body = np.ascontiguousarray(blob.ids.astype(">u8")).view(np.uint8).reshape(-1, 8)[:, 8 - ID_BYTES :]
    head = b"" if blob.flags is None else bytes([blob.flags]) + blob.floor.to_bytes(ID_BYTES, "big")
    return head + body.tobytes()


def built(ids: Ids, *, whole_history: bool) -> Blob:
    """A freshly built list of ids (ascending): complete to the beginning, or down to its oldest id."""
    floor = 0 if whole_history or len(ids) == 0 else int(ids[0])
    return Blob(BUILT, floor, ids)


def bounded(blob: Blob, size: int) -> Blob:
    """Keep the newest `size` ids; the floor rises to the oldest one kept."""
    if len(blob.ids) <= size:
        return blob
    kept = blob.ids[-size:]
    return Blob(blob.flags, max(blob.floor, int(kept[0])), kept)


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

    def __init__(self, redis: Redis, size: int) -> None:
        self._redis = redis
        self.size = size

    @property
    def max_bytes(self) -> int:
        """Past this length an appended-to list is rewritten to its newest `size` ids."""
        return HEADER_BYTES + (self.size + max(8, self.size // 2)) * ID_BYTES

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
            while True:
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
                    continue  # an append landed meanwhile: merge again
