"""The floor: the engine's read interfaces answered from memory, for `homefeed bench read`.

With HOMEFEED_FEED_STRATEGY=floor the API serves exactly as usual (uvicorn, Strawberry, the
same resolvers and loaders, tokens checked, cursors signed) but every read the home feed
makes is a dict look-up in a snapshot loaded at start-up: no PostgreSQL or Redis is touched
while serving. What is left is the cost of the serving stack itself, the floor any storage
design is measured against.

The snapshot (HOMEFEED_FLOOR_SNAPSHOT) is captured once by the bench from the real engine:
the pages it will ask for (first pages and the deeper ones their cursors lead to), and the
users, posts, follows and likes that hydrating them needs. It is a pickle the bench writes
for its own server; never point this at a file from anywhere else.
"""

from __future__ import annotations

import asyncio
import pickle
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, cast

import asyncpg
from redis.asyncio import Redis

from homefeed.feed import config
from homefeed.feed.auth import Passwords, Tokens
from homefeed.feed.config import Settings
from homefeed.feed.cursors import Cursors
from homefeed.feed.errors import InvalidInput
from homefeed.feed.feeds import Feeds, check_first
from homefeed.feed.live import LiveHub, Notices
from homefeed.feed.ratelimit import RateLimiter
from homefeed.feed.records import Page, Post, User
from homefeed.feed.services import Services
from homefeed.feed.store.likes import Likes
from homefeed.feed.store.posts import Posts
from homefeed.feed.store.relations import Relations
from homefeed.feed.store.users import Users

PageKey = tuple[int, int | None, int]  # viewer, before (None: first page), first


@dataclass
class Snapshot:
    """Everything the floor serves."""

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
            raise ValueError(f"{path} is not a floor snapshot")
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
    # so hydration in the floor does exactly the work it does over the real engine.
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


class _Untouched:
    """Stands in for the PostgreSQL pool and the Redis client. Only health checks may use it:
    anything else raises, so a read path that still reached for storage would fail loudly."""

    async def fetchval(self, query: str, *args: object) -> int:
        if query != "SELECT 1":
            raise RuntimeError(f"the floor touches no database: {query!r}")
        return 1

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        pass

    async def aclose(self) -> None:
        pass

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError(f"the floor touches no storage ({name})")


class MemoryUsers(Users):
    def __init__(self, snap: Snapshot) -> None:
        self._snap = snap

    async def by_ids(self, ids: Sequence[int]) -> list[User | None]:
        return [self._snap.users.get(i) for i in ids]


class MemoryPosts(Posts):
    def __init__(self, snap: Snapshot) -> None:
        self._snap = snap

    async def by_ids(self, ids: Sequence[int]) -> list[Post | None]:
        return [self._snap.posts.get(i) for i in ids]


class MemoryRelations(Relations):
    def __init__(self, snap: Snapshot) -> None:
        self._snap = snap

    async def follows_among(self, viewer: int, user_ids: Sequence[int]) -> set[int]:
        return {u for u in user_ids if (viewer, u) in self._snap.follows}


class MemoryLikes(Likes):
    def __init__(self, snap: Snapshot) -> None:
        self._snap = snap

    async def liked_among(self, user_id: int, post_ids: Sequence[int]) -> set[int]:
        return {p for p in post_ids if (user_id, p) in self._snap.likes}


class MemoryFeeds(Feeds):
    def __init__(self, snap: Snapshot, settings: Settings) -> None:
        self._snap = snap
        self.strategy = "floor"
        self.size = settings.timeline_size

    async def close(self) -> None:
        """Nothing to close: the floor holds no connections."""

    async def home(self, viewer: int, first: int, before: int | None) -> Page:
        page = self._snap.pages.get((viewer, before, check_first(first)))
        if page is None:
            raise InvalidInput("the floor holds no such page (only the ones the bench captured)")
        return page


def open_floor_services(settings: Settings) -> Services:
    """Services whose reads come from the snapshot named by HOMEFEED_FLOOR_SNAPSHOT."""
    if settings.floor_snapshot is None:
        raise RuntimeError("HOMEFEED_FEED_STRATEGY=floor needs HOMEFEED_FLOOR_SNAPSHOT")
    snap = Snapshot.load(settings.floor_snapshot)
    secret = config.jwt_secret(settings)
    pool = cast(asyncpg.Pool, _Untouched())
    redis = cast(Redis, _Untouched())
    posts = MemoryPosts(snap)
    return Services(
        settings=settings,
        pool=pool,
        redis=redis,
        users=MemoryUsers(snap),
        posts=posts,
        relations=MemoryRelations(snap),
        likes=MemoryLikes(snap),
        feeds=MemoryFeeds(snap, settings),
        cursors=Cursors(secret),
        tokens=Tokens(secret, settings.token_ttl_days * 86400),
        passwords=Passwords(),
        limiter=RateLimiter(redis, settings.redis_prefix, settings.rate_limit_per_minute),
        notices=Notices(redis, settings.redis_prefix),
        live=LiveHub(redis, pool, posts, settings.redis_prefix),
    )
