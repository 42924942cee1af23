"""Who wrote a feed's posts: each author's handle, display name and join date, kept per process.

These never change once a user exists (nothing updates them, and users are never deleted
while their posts exist), so what a process has read once stays true and needs no expiry
or invalidation: remembering it is not a cache of answers. A feed read thus looks each
post's author up here instead of joining `users` per post in PostgreSQL, where that probe
was over a third of the visibility statement's buffer reads. What does change, the follower
and following counts, is not kept: a feed page leaves them out, and they load through the
users DataLoader, as they are now, if a query asks for them.

A process starts by reading the most-followed authors (whose posts fill most timelines) in
the background, so it does not meet each author for the first time mid-read; an author it
has not met yet costs a look-up, shared by every read of that turn of the event loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from itertools import islice

import asyncpg
from aiodataloader import DataLoader

from homefeed.feed.records import User
from homefeed.feed.store.users import Users

log = logging.getLogger(__name__)

# Reads users on a replica when one may answer (None: none may); None in the list: not there yet.
ReplicaUsers = Callable[[Sequence[int]], Awaitable["list[User | None] | None"]]

# Bounded so a long-lived process keeps a steady footprint (an entry is about 300 bytes): past
# it, the older half of the authors met since start is forgotten and read again when next
# needed. The most-followed authors read at start are kept: they wrote most of what any
# timeline holds, and forgetting them first (they were the oldest entries) made every process
# read them again, one statement at a time, once the table had filled.
MAX_AUTHORS = 200_000
# Read at start: at most this many of the most-followed authors.
WARM_AUTHORS = MAX_AUTHORS // 2


class Authors:
    """Authors by id, read from PostgreSQL once per process and remembered."""

    def __init__(
        self,
        users: Users,
        max_size: int = MAX_AUTHORS,
        warm: int = WARM_AUTHORS,
        *,
        replica: ReplicaUsers | None = None,
    ) -> None:
        self._users = users
        # What is read never changes, so any replica may answer; one that lacks a new user
        # (not replayed yet) leaves that user to the primary.
        self._replica = replica
        self._max_size = max(1, max_size)
        self._warm_size = min(warm, self._max_size)
        self._known: dict[int, User] = {}
        # The warmed authors, most followed first: forgotten only if they alone overflow the
        # bound, least followed first.
        self._pinned: dict[int, None] = {}
        # The hot path's look-up: a plain dict.get, no call of ours per post.
        self.get = self._known.get
        # Built on first use, inside the event loop.
        self._loader: DataLoader[int, User] | None = None
        self._warming: asyncio.Task[None] | None = None
        self.reads = 0  # statements run for authors not yet known

    def __len__(self) -> int:
        return len(self._known)

    def start(self) -> None:
        """Begin reading the most-followed authors in the background (once)."""
        if self._warming is None and self._warm_size > 0:
            self._warming = asyncio.get_running_loop().create_task(self._warm())

    async def load(self, ids: Sequence[int]) -> dict[int, User]:
        """The authors with these ids (each must be an existing user's), counts left out."""
        if self._loader is None:
            self._loader = DataLoader(batch_load_fn=self._read, cache=False, max_batch_size=1000)
        users: list[User] = await self._loader.load_many(ids)
        return {u.id: u for u in users}

    async def close(self) -> None:
        """Stop the start-up read if it is still going."""
        if self._warming is not None and not self._warming.done():
            self._warming.cancel()
            await asyncio.gather(self._warming, return_exceptions=True)

    async def _warm(self) -> None:
        try:
            users = await self._users.most_followed(self._warm_size)
        except (asyncpg.PostgresError, OSError) as exc:
            log.warning("could not read the most-followed authors at start: %s", exc)
            return
        self._remember(users)
        self._pinned.update(dict.fromkeys(u.id for u in users))
        # The table may have filled meanwhile, from reads: the bound holds for the pinned too.
        self._evict(len(self._known) - self._max_size)

    async def _read(self, ids: Sequence[int]) -> list[User]:
        self.reads += 1
        found = await self._replica(ids) if self._replica is not None else None
        if found is None:
            found = await self._users.by_ids(ids)
        elif None in found:
            later = [i for i, user in zip(ids, found, strict=True) if user is None]
            primary = dict(zip(later, await self._users.by_ids(later), strict=True))
            found = [user if user is not None else primary[i] for i, user in zip(ids, found, strict=True)]
        gone = sorted({i for i, user in zip(ids, found, strict=True) if user is None})
        if gone:
            raise LookupError(f"authors {gone} do not exist")
        return self._remember(u for u in found if u is not None)

    def _remember(self, users: Iterable[User]) -> list[User]:
        """Keep these authors, less their counts (which change); returns what was kept."""
        fresh = [u._replace(follower_count=None, following_count=None) for u in users]
        known = self._known
        overflow = len(known) + len(fresh) - self._max_size
        if overflow > 0:
            self._evict(max((len(known) - len(self._pinned)) // 2, overflow))
        for user in fresh:
            known[user.id] = user
        return fresh

    def _evict(self, count: int) -> None:
        """Forget `count` authors: the oldest met since start, then the least followed warmed ones."""
        if count <= 0:
            return
        known, pinned = self._known, self._pinned
        for old in list(islice((a for a in known if a not in pinned), count)):
            del known[old]
            count -= 1
        while count > 0 and pinned:
            old, _ = pinned.popitem()  # the last inserted: the least followed
            if known.pop(old, None) is not None:
                count -= 1
