"""Posts in PostgreSQL. Every write commits its fan-out job (outbox row) in the same statement."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from homefeed.feed.errors import Forbidden, InvalidInput, NotFound
from homefeed.feed.records import Post
from homefeed.feed.store.marks import ReplicaReads, WriteMarks
from homefeed.feed.store.text import check_storable

MAX_POST_LENGTH = 280
_COLUMNS = "id, author_id, text, like_count"


def post_from_row(row: asyncpg.Record) -> Post:
    """A Post from a row with id, author_id, text and like_count."""
    return Post(id=row["id"], author_id=row["author_id"], text=row["text"], like_count=row["like_count"])


def clean_text(text: str) -> str:
    """Trimmed post text, or InvalidInput if empty or too long."""
    text = text.strip()
    if not text:
        raise InvalidInput("post text must not be empty")
    if len(text) > MAX_POST_LENGTH:
        raise InvalidInput(f"post text must be at most {MAX_POST_LENGTH} characters")
    return check_storable(text, "post text")


# A page of an author's live posts: keyset cursor (`before`, exclusive; None from the newest) and size.
@dataclass(frozen=True, slots=True)
class AuthorPage:
    author_id: int
    before: int | None
    limit: int


_NO_UPPER_BOUND = 2**63 - 1


def _unblocked(viewer: str, author: str) -> str:
    """SQL true when no block stands between the viewer parameter and an author column, either way.

    A NULL viewer (anonymous) sees everyone. Both directions hit an index: the primary key
    (blocker, blocked) and blocks_by_blocked (blocked, blocker).
    """
    return f"""({viewer}::bigint IS NULL OR NOT EXISTS (
        SELECT 1 FROM blocks b
        WHERE (b.blocker_id = {viewer} AND b.blocked_id = {author})
           OR (b.blocker_id = {author} AND b.blocked_id = {viewer})))"""


class Posts:
    """Reads and writes the posts table."""

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

    async def create(self, author_id: int, text: str) -> Post:
        """Insert a post and its fan-out job atomically (one statement, one round trip)."""
        row = await self._pool.fetchrow(
            f"""WITH p AS (
                    INSERT INTO posts (author_id, id, text) VALUES ($1, next_post_id($1), $2)
                    RETURNING {_COLUMNS}
                ), job AS (
                    INSERT INTO outbox (kind, actor_id, subject_id)
                    SELECT 'post', author_id, id FROM p
                ), counted AS (
                    -- The author's posts per day: the ranked feed's engagement rate divides by it.
                    SELECT author_recent_add(author_id, post_day(id), 1, 0) FROM p
                )
                SELECT {_COLUMNS} FROM p, counted""",
            author_id,
            clean_text(text),
        )
        assert row is not None
        await self._mark(author_id)
        return post_from_row(row)

    async def delete(self, viewer_id: int, post_id: int) -> None:
        """Soft-delete the viewer's own post. Deleting it again is a no-op.

        `p.deleted_at IS NULL` is checked on the updated row, not only on the CTE's snapshot:
        PostgreSQL re-evaluates it after waiting for the row lock, so of two overlapping deletes
        only the first queues a delete job.
        """
        row = await self._pool.fetchrow(
            """WITH target AS (
                   SELECT author_id, id, deleted_at FROM posts WHERE id = $2
               ), del AS (
                   UPDATE posts p SET deleted_at = now()
                   FROM target t
                   WHERE p.author_id = t.author_id AND p.id = t.id
                     AND t.author_id = $1 AND p.deleted_at IS NULL
                   RETURNING p.author_id, p.id
               ), job AS (
                   INSERT INTO outbox (kind, actor_id, subject_id)
                   SELECT 'delete', author_id, id FROM del
               )
               SELECT author_id FROM target""",
            viewer_id,
            post_id,
        )
        if row is None:
            raise NotFound("no such post")
        if row["author_id"] != viewer_id:
            raise Forbidden("only the author can delete a post")
        await self._mark(viewer_id, hides=True)

    async def by_ids(
        self, ids: Sequence[int], *, viewer: int | None = None, lag_ok: bool = False
    ) -> list[Post | None]:
        """Live posts for ids, aligned with the input; None where missing or deleted, and (for a
        `viewer`) where a block stands between the viewer and the author, either way.

        `lag_ok`: a replica may answer (one that has the viewer's own and every hiding write);
        an id it does not show, which may be newer than its replay, is asked of the primary.
        """
        if lag_ok and self._replicas is not None and ids:
            found = await self._replicas.run("posts", viewer, (), lambda pool: _by_ids(pool, ids, viewer))
            if found is not None:
                later = [i for i, post in zip(ids, found, strict=True) if post is None]
                if not later:
                    return found
                primary = dict(zip(later, await _by_ids(self._pool, later, viewer), strict=True))
                return [p if p is not None else primary[i] for i, p in zip(ids, found, strict=True)]
        return await _by_ids(self._pool, ids, viewer)

    async def recent_ids(self, author_id: int, limit: int, *, include_deleted: bool = False) -> list[int]:
        """Ids of an author's newest posts (optionally with deleted ones), newest first."""
        rows = await self._pool.fetch(
            """SELECT id FROM posts WHERE author_id = $1 AND ($3 OR deleted_at IS NULL)
               ORDER BY id DESC LIMIT $2""",
            author_id,
            limit,
            include_deleted,
        )
        return [r["id"] for r in rows]

    async def by_author(self, author_id: int, before: int | None, limit: int) -> list[int]:
        """Ids of an author's live posts, newest first, older than `before`."""
        rows = await self._pool.fetch(
            """SELECT id FROM posts
               WHERE author_id = $1 AND deleted_at IS NULL AND id < $2
               ORDER BY id DESC LIMIT $3""",
            author_id,
            before if before is not None else _NO_UPPER_BOUND,
            limit,
        )
        return [r["id"] for r in rows]

    async def by_authors(
        self, pages: Sequence[AuthorPage], *, viewer: int | None = None, lag_ok: bool = False
    ) -> list[list[Post]]:
        """Live posts of many authors' pages, newest first, aligned with `pages`: one statement.

        Each page is its own index range scan (LATERAL over the unnested pages), so many
        authors' pages cost one round trip, and each page reads only its own rows. For a
        `viewer`, an author with a block between them (either way) has an empty page.
        `lag_ok`: a replica that has replayed these authors' last writes may answer.
        """
        if not pages:
            return []
        if lag_ok and self._replicas is not None:
            authors = list({p.author_id for p in pages})
            found = await self._replicas.run(
                "posts", viewer, authors, lambda pool: _by_authors(pool, pages, viewer)
            )
            if found is not None:
                return found
        return await _by_authors(self._pool, pages, viewer)


async def _by_ids(pool: asyncpg.Pool, ids: Sequence[int], viewer: int | None) -> list[Post | None]:
    rows = await pool.fetch(
        f"""SELECT {_COLUMNS} FROM posts
            WHERE id = ANY($1::bigint[]) AND deleted_at IS NULL
              AND {_unblocked("$2", "posts.author_id")}""",
        list(ids),
        viewer,
    )
    found = {r["id"]: post_from_row(r) for r in rows}
    return [found.get(i) for i in ids]


async def _by_authors(
    pool: asyncpg.Pool, pages: Sequence[AuthorPage], viewer: int | None
) -> list[list[Post]]:
    rows = await pool.fetch(
        f"""SELECT k.i, p.id, p.author_id, p.text, p.like_count
            FROM unnest($1::bigint[], $2::bigint[], $3::int[])
                 WITH ORDINALITY AS k(author_id, before, lim, i)
            CROSS JOIN LATERAL (
                SELECT {_COLUMNS} FROM posts
                WHERE author_id = k.author_id AND deleted_at IS NULL AND id < k.before
                ORDER BY id DESC LIMIT k.lim
            ) p
            WHERE {_unblocked("$4", "k.author_id")}
            ORDER BY k.i, p.id DESC""",
        [p.author_id for p in pages],
        [p.before if p.before is not None else _NO_UPPER_BOUND for p in pages],
        [p.limit for p in pages],
        viewer,
    )
    found: list[list[Post]] = [[] for _ in pages]
    for row in rows:
        found[row["i"] - 1].append(post_from_row(row))
    return found
