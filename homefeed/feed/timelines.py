"""Bounded id lists in Redis: home timelines and pulled authors' recent lists.

A list is one Redis string: an optional header byte, then post ids as 7-byte
big-endian integers (ids < 2**53). The header is present exactly when the
length is 1 modulo 7, and carries two flags:

- BUILT: a rebuild wrote this list, so it is complete down to its oldest entry.
  A list without it (new, or created by a write that arrived before the rebuild)
  is treated as missing and rebuilt.
- WHOLE: the list holds all history (nothing older exists anywhere).

Fan-out appends ids with a plain `APPEND` (see bulk.py): O(1) on the server, no
script. So entries may arrive out of order or twice; readers sort and
deduplicate (numpy, microseconds for 800 ids), and a list that grows past its
bound plus slack is rewritten to its newest `size` ids. Rewrites (rebuild,
backfill, removal, trim) are optimistic transactions on the one key (WATCH), so
a concurrent append is never lost. Every operation touches a single key.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from redis.asyncio import Redis
from redis.exceptions import WatchError

from homefeed.feed.keys import ID_BYTES

BUILT = 1
WHOLE = 2
BOTTOM = 0  # the id a read reports after the last entry of a WHOLE list

Ids = npt.NDArray[np.int64]
_EMPTY: Ids = np.zeros(0, dtype=np.int64)


@dataclass(frozen=True, slots=True)
class Blob:
    """A decoded list: its flags (None without a header) and its distinct ids, ascending."""

    flags: int | None
    ids: Ids

    @property
    def built(self) -> bool:
        return self.flags is not None and bool(self.flags & BUILT)

    @property
    def whole(self) -> bool:
        return self.flags is not None and bool(self.flags & WHOLE)


def decode(raw: bytes | None) -> Blob:
    """Parse a stored list (None for a missing key)."""
    if not raw:
        return Blob(None, _EMPTY)
    flags: int | None = None
    if len(raw) % ID_BYTES == 1:
        flags, raw = raw[0], raw[1:]
    n = len(raw) // ID_BYTES
    wide = np.zeros((n, 8), dtype=np.uint8)
    wide[:, 8 - ID_BYTES :] = np.frombuffer(raw, dtype=np.uint8, count=n * ID_BYTES).reshape(n, ID_BYTES)
    ids = np.unique(wide.view(">u8").ravel().astype(np.int64))
    return Blob(flags, ids)


def encode(flags: int | None, ids: Ids) -> bytes:
    """A list as stored: header (if flags is not None) and ids in ascending order."""
    body = np.ascontiguousarray(ids.astype(">u8")).view(np.uint8).reshape(-1, 8)[:, 8 - ID_BYTES :]
    head = b"" if flags is None else bytes([flags])
    return head + body.tobytes()


def bounded(blob: Blob, size: int) -> Blob:
    """Keep the newest `size` ids; dropping any means the list no longer holds all history."""
    if len(blob.ids) <= size:
        return blob
    flags = None if blob.flags is None else blob.flags & ~WHOLE
    return Blob(flags, blob.ids[-size:])


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
    ids: list[int] = blob.ids[start:end][::-1].tolist()
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
        return 1 + (self.size + max(8, self.size // 2)) * ID_BYTES

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
        """Merge ids into a list and mark it BUILT (and WHOLE if ids are all history); set its expiry.

        Entries written meanwhile (fan-out racing the rebuild) are kept by the merge.
        """

        def merged(old: Blob) -> Blob:
            flags = BUILT | (WHOLE if whole_history else 0)
            return bounded(Blob(flags, np.union1d(old.ids, np.asarray(ids, dtype=np.int64))), self.size)

        await self._rewrite(key, merged, ttl=ttl)

    async def add(self, key: str, ids: Sequence[int], ttl: int, *, more_before: bool) -> None:
        """Merge ids into one list (a backfill), keeping it bounded.

        `more_before` says the source has older ids than these, so the list can no longer
        claim to hold all history. A missing list is created without flags (untrusted).
        """
        if not ids and not more_before:
            return

        def merged(old: Blob) -> Blob:
            new = np.asarray(ids, dtype=np.int64)
            if old.built and not old.whole:
                # A bounded list vouches only for what is above its oldest id: an older id added
                # here would claim the posts between, which a trim or rebuild may have dropped.
                if len(old.ids) == 0:
                    return Blob(None, old.ids)  # nothing left to say where it ends: rebuild on read
                new = new[new >= old.ids[0]]
            flags = old.flags if old.flags is None or not more_before else old.flags & ~WHOLE
            return bounded(Blob(flags, np.union1d(old.ids, new)), self.size)

        await self._rewrite(key, merged, ttl=ttl, only_new_ttl=True)

    async def remove(self, key: str, ids: Sequence[int]) -> None:
        """Remove ids from one list (a missing list stays missing)."""
        if ids:
            gone = np.asarray(ids, dtype=np.int64)
            await self._rewrite(key, lambda old: Blob(old.flags, np.setdiff1d(old.ids, gone)), create=False)

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
                        pipe.set(key, encode(new.flags, new.ids), ex=ttl)
                    else:
                        pipe.set(key, encode(new.flags, new.ids), keepttl=True)
                    await pipe.execute()
                    return
                except WatchError:
                    continue  # an append landed meanwhile: merge again
