"""Who wrote a feed's posts: each author's handle, display name and join date, kept per process.

These never change once a user exists (nothing updates them, and users are never deleted
while their posts exist), so what a process has read once stays true and needs no expiry
or invalidation: remembering it is not a cache of answers. A feed read thus looks each
post's author up here instead of joining `users` per post in PostgreSQL (a quarter of the
visibility statement's cost). What does change, the follower and following counts, is not
kept: a feed page leaves them out, and they load through the users DataLoader if a query
asks for them.
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import islice

import asyncpg

from homefeed.feed.records import User

# Bounded so a long-lived process reading many authors keeps a steady footprint (an entry is
# about 300 bytes): past it, the older half is forgotten and read again when next needed.
MAX_AUTHORS = 200_000

_READ = "SELECT id, handle, display_name, created_at FROM users WHERE id = ANY($1::bigint[])"


class Authors:
    """Authors by id, read from PostgreSQL once per process and remembered."""

    def __init__(self, pool: asyncpg.Pool, max_size: int = MAX_AUTHORS) -> None:
        self._pool = pool
        self._max_size = max(1, max_size)
        self._known: dict[int, User] = {}
        self.reads = 0  # statements run for authors not yet known

    def __len__(self) -> int:
        return len(self._known)

    async def of(self, ids: Iterable[int]) -> dict[int, User]:
        """The authors with these ids (every id must be an existing user's), counts left out."""
        known = self._known
        found: dict[int, User] = {}
        missing: list[int] = []
        for author in ids:
            user = known.get(author)
            if user is None:
                missing.append(author)
            else:
                found[author] = user
        if missing:
            self.reads += 1
            rows = await self._pool.fetch(_READ, missing)
            if len(known) + len(rows) > self._max_size:
                for old in list(islice(known, max(len(known) // 2, len(known) + len(rows) - self._max_size))):
                    del known[old]
            for row in rows:
                user = User(row[0], row[1], row[2], row[3], None, None)
                known[user.id] = found[user.id] = user
            if len(rows) < len(set(missing)):
                gone = sorted(set(missing) - found.keys())
                raise LookupError(f"authors {gone} do not exist")
        return found
