"""Users in PostgreSQL: sign-up, look-ups by id and handle, credentials."""

from __future__ import annotations

import re
from collections.abc import Sequence

import asyncpg

from homefeed.feed.errors import InvalidInput
from homefeed.feed.records import User
from homefeed.feed.store.marks import ReplicaReads, WriteMarks
from homefeed.feed.store.text import check_storable, storable

HANDLE = re.compile(r"^[A-Za-z0-9_]{1,30}$")
MAX_DISPLAY_NAME = 50
_COLUMNS = "id, handle, display_name, created_at, follower_count, following_count"
# Handles are unique through the handles table (kept by a trigger), keyed by the lower-cased handle.
_BY_HANDLE = "(SELECT user_id FROM handles WHERE handle_key = lower($1))"


def user_from_row(row: asyncpg.Record) -> User:
    """A User from a row with the user columns."""
    return User(
        id=row["id"],
        handle=row["handle"],
        display_name=row["display_name"],
        created_at=row["created_at"],
        follower_count=row["follower_count"],
        following_count=row["following_count"],
    )


def handle_key(handle: str) -> str:
    """What a handle is looked up (and rate-limited) by: trimmed, without a leading @, lower case.
    Handles are unique ignoring case, so every spelling of one handle has one key."""
    return handle.strip().removeprefix("@").lower()


def clean_handle(handle: str) -> str:
    """A valid handle or InvalidInput saying what is allowed."""
    handle = handle.strip().removeprefix("@")
    if not HANDLE.match(handle):
        raise InvalidInput("handle must be 1 to 30 letters, digits or underscores")
    return handle


def clean_display_name(name: str | None, handle: str) -> str:
    """The display name to store: trimmed, defaulting to the handle."""
    name = (name or "").strip() or handle
    if len(name) > MAX_DISPLAY_NAME:
        raise InvalidInput(f"displayName must be at most {MAX_DISPLAY_NAME} characters")
    return check_storable(name, "displayName")


class Users:
    """Reads and writes the users table."""

    def __init__(
        self, pool: asyncpg.Pool, marks: WriteMarks | None = None, replicas: ReplicaReads | None = None
    ) -> None:
        self._pool = pool
        self._marks = marks
        # Where reads that accept replica lag (`lag_ok`) may go.
        self._replicas = replicas

    async def _mark(self, user_id: int, *, hides: bool = False) -> None:
        # Only with replicas: their readers must see this write (homefeed/feed/replicas.py).
        if self._marks is not None:
            await self._marks.wrote(user_id, hides=hides)

    async def create(self, handle: str, display_name: str, password_hash: str) -> User:
        """Insert a user; InvalidInput if the handle is taken (in any letter case)."""
        try:
            row = await self._pool.fetchrow(
                f"""INSERT INTO users (handle, display_name, password_hash)
                    VALUES ($1, $2, $3) RETURNING {_COLUMNS}""",
                handle,
                display_name,
                password_hash,
            )
        except asyncpg.UniqueViolationError:
            raise InvalidInput(f"handle @{handle} is taken") from None
        assert row is not None
        await self._mark(row["id"])
        return user_from_row(row)

    async def by_ids(
        self, ids: Sequence[int], *, viewer: int | None = None, lag_ok: bool = False
    ) -> list[User | None]:
        """Users for ids, aligned with the input; None where missing.

        `lag_ok`: a replica that has replayed the `viewer`'s own last write (and the last hiding
        write) may answer: what the viewer changed, their own profile and the counts their
        follows moved, is there; others' changes to the counts show within the replica's lag.
        A user the replica lacks (signed up since its replay) is asked of the primary.
        """
        if lag_ok and self._replicas is not None and ids:
            found = await self._replicas.run("users", viewer, (), lambda pool: _by_ids(pool, ids))
            if found is not None:
                later = [i for i, user in zip(ids, found, strict=True) if user is None]
                if not later:
                    return found
                primary = dict(zip(later, await _by_ids(self._pool, later), strict=True))
                return [u if u is not None else primary[i] for i, u in zip(ids, found, strict=True)]
        return await _by_ids(self._pool, ids)

    async def most_followed(self, limit: int) -> list[User]:
        """The `limit` users with the most followers, most followed first."""
        rows = await self._pool.fetch(
            f"SELECT {_COLUMNS} FROM users ORDER BY follower_count DESC LIMIT $1", limit
        )
        return [user_from_row(r) for r in rows]

    async def by_handle(self, handle: str) -> User | None:
        """The user with this handle, ignoring letter case."""
        if not storable(handle):
            return None  # no stored handle can contain it
        row = await self._pool.fetchrow(f"SELECT {_COLUMNS} FROM users WHERE id = {_BY_HANDLE}", handle)
        return user_from_row(row) if row else None

    async def credentials(self, handle: str) -> tuple[User, str] | None:
        """The user and stored password hash for a handle."""
        if not storable(handle):
            return None
        row = await self._pool.fetchrow(
            f"SELECT {_COLUMNS}, password_hash FROM users WHERE id = {_BY_HANDLE}",
            handle,
        )
        return (user_from_row(row), row["password_hash"]) if row else None

    async def exists(self, user_id: int) -> bool:
        """Whether a user with this id exists."""
        return bool(await self._pool.fetchval("SELECT EXISTS (SELECT 1 FROM users WHERE id = $1)", user_id))


async def _by_ids(pool: asyncpg.Pool, ids: Sequence[int]) -> list[User | None]:
    rows = await pool.fetch(f"SELECT {_COLUMNS} FROM users WHERE id = ANY($1::bigint[])", list(ids))
    found = {r["id"]: user_from_row(r) for r in rows}
    return [found.get(i) for i in ids]
