"""The feed manager: the one object that answers every timeline question."""

from __future__ import annotations

import asyncpg

from homefeed.feed.errors import InvalidInput
from homefeed.feed.posts import Posts
from homefeed.feed.pull import pull_ids
from homefeed.feed.records import Page

MAX_PAGE = 100


def check_first(first: int) -> int:
    """A valid page size, or InvalidInput."""
    if not 1 <= first <= MAX_PAGE:
        raise InvalidInput(f"first must be between 1 and {MAX_PAGE}")
    return first


class Feeds:
    """Home feeds and author feeds, newest first, keyset-paged by post id."""

    def __init__(self, pool: asyncpg.Pool, posts: Posts) -> None:
        self._pool = pool
        self._posts = posts

    async def home(self, viewer: int, first: int, before: int | None) -> Page:
        """One page of the viewer's home feed, posts older than `before`."""
        ids = await pull_ids(self._pool, viewer, before, check_first(first) + 1)
        return Page(ids[:first], len(ids) > first)

    async def author(self, author: int, first: int, before: int | None) -> Page:
        """One page of an author's own posts."""
        ids = await self._posts.by_author(author, before, check_first(first) + 1)
        return Page(ids[:first], len(ids) > first)
