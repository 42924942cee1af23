"""The baseline's snapshot: what the read bench will ask for, read once through the real engine.

The pages it will ask for (first pages and the deeper ones their cursors lead to), and the
users, posts, follows and likes that hydrating them needs. It is a pickle the bench writes
for its own server; never load one from anywhere else.
"""

from __future__ import annotations

import asyncio
import pickle
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

from homefeed.feed.records import Page, Post, User
from homefeed.feed.services import Services

PageKey = tuple[int, int | None, int]  # viewer, before (None: first page), first


@dataclass
class Snapshot:
    """Everything the baseline serves."""

    pages: dict[PageKey, Page] = field(default_factory=dict)
    users: dict[int, User] = field(default_factory=dict)
    posts: dict[int, Post] = field(default_factory=dict)
    follows: set[tuple[int, int]] = field(default_factory=set)  # (viewer, followee)
    likes: set[tuple[int, int]] = field(default_factory=set)  # (viewer, post)

    def save(self, path: Path) -> None:
        path.write_bytes(pickle.dumps(self, protocol=pickle.HIGHEST_PROTOCOL))

    @classmethod
    def load(cls, path: Path) -> Snapshot:
        snapshot = pickle.loads(path.read_bytes())
        if not isinstance(snapshot, cls):
            raise ValueError(f"{path} is not a baseline snapshot")
        return snapshot


async def capture(services: Services, viewers: Iterable[int], first: int, depth: int) -> Snapshot:
    """Read each viewer's first page and up to `depth` deeper pages through the real engine."""
    snap = Snapshot()
    gate = asyncio.Semaphore(8)

    async def walk(viewer: int) -> None:
        before: int | None = None
        async with gate:
            for _ in range(depth + 1):
                page = await services.feeds.home(viewer, first, before)
                snap.pages[(viewer, before, first)] = page
                if not page.has_next or not page.post_ids:
                    return
                before = page.post_ids[-1]

    viewers = list(viewers)
    await asyncio.gather(*(walk(v) for v in viewers))
    post_ids = sorted({i for page in snap.pages.values() for i in page.post_ids})
    for post in await services.posts.by_ids(post_ids):
        if post is not None:
            snap.posts[post.id] = post
    user_ids = sorted({p.author_id for p in snap.posts.values()} | set(viewers))
    for user in await services.users.by_ids(user_ids):
        if user is not None:
            snap.users[user.id] = user
    for viewer in viewers:
        pages = [p for (v, _, _), p in snap.pages.items() if v == viewer]
        ids = [i for p in pages for i in p.post_ids if i in snap.posts]
        authors = sorted({snap.posts[i].author_id for i in ids})
        snap.follows |= {(viewer, a) for a in await services.relations.follows_among(viewer, authors)}
        snap.likes |= {(viewer, i) for i in await services.likes.liked_among(viewer, ids)}
    # Pages as the hybrid engine returns them: with their posts, authors and the viewer's flags,
    # so hydration in the baseline does exactly the work it does over the real engine.
    for (viewer, before, n), page in list(snap.pages.items()):
        posts = tuple(snap.posts[i] for i in page.post_ids if i in snap.posts)
        page_authors = tuple({p.author_id: snap.users[p.author_id] for p in posts}.values())
        snap.pages[(viewer, before, n)] = replace(
            page,
            posts=posts,
            authors=page_authors,
            liked=frozenset(p.id for p in posts if (viewer, p.id) in snap.likes),
            followed=frozenset(a.id for a in page_authors if (viewer, a.id) in snap.follows),
            viewer_known=True,
        )
    return snap
