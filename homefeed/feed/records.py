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
    # None when the read that built the record left it out: the home feed's read does, since
    # decoding a timestamp per post (about 0.6 us) is a fifth of its own client-side work and
    # feeds rarely show when an author joined. Whoever needs it loads the user.
    created_at: datetime | None
    follower_count: int
    following_count: int


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
