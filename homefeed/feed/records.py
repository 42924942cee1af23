"""Typed records crossing the engine's boundary."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

from homefeed.feed.ids import id_time


# Users and posts are named tuples: a read builds dozens per page, and a tuple is built in a
# fifth of a frozen dataclass's time (which sets each field through object.__setattr__).
class User(NamedTuple):
    id: int
    handle: str
    display_name: str
    created_at: datetime
    # None when the read that built the record left them out: a feed page's authors come
    # from what the process remembers of them (feed/authors.py), which leaves out what
    # changes. Whoever needs them loads the user.
    follower_count: int | None
    following_count: int | None


class Post(NamedTuple):
    id: int
    author_id: int
    text: str
    like_count: int

    @property
    def created_at(self) -> datetime:
        """Posts are timestamped by their id."""
        return id_time(self.id)


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a post list: ids newest first, and whether more exist after the last."""

    post_ids: list[int]
    has_next: bool
    # Posts already read while building the page, so hydration need not read them again.
    posts: tuple[Post, ...] = ()
    # Their authors, read with them.
    authors: tuple[User, ...] = ()
    # Which of `posts` the viewer likes, and which of `authors` they follow (None: not read).
    liked: frozenset[int] | None = None
    followed: frozenset[int] | None = None
    # Whether the viewer's user exists, if the read found out (None: it did not look).
    viewer_known: bool | None = None
