"""The baseline's engine: its read interfaces answered from the snapshot, no storage touched.

Every read the home feed makes is a dict look-up; PostgreSQL and Redis are stand-ins that
raise if anything but a health check reaches for them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import asyncpg
from redis.asyncio import Redis

from homefeed.bench.baseline.snapshot import Snapshot
from homefeed.feed import config
from homefeed.feed.auth import Passwords, Tokens
from homefeed.feed.config import Settings
from homefeed.feed.cursors import Cursors
from homefeed.feed.errors import InvalidInput
from homefeed.feed.feeds import Feeds, check_first
from homefeed.feed.limits import Limits
from homefeed.feed.live import LiveHub, Notices
from homefeed.feed.ranking.impressions import ImpressionLog
from homefeed.feed.ranking.ranker import Ranker
from homefeed.feed.ranking.scoring import Scorer
from homefeed.feed.ranking.snapshots import Snapshots
from homefeed.feed.records import Page, Post, User
from homefeed.feed.services import Services
from homefeed.feed.store.likes import Likes
from homefeed.feed.store.posts import Posts
from homefeed.feed.store.relations import Relations
from homefeed.feed.store.users import Users


class _Untouched:
    """Stands in for the PostgreSQL pool and the Redis client. Only health checks may use it:
    anything else raises, so a read path that still reached for storage would fail loudly."""

    async def fetchval(self, query: str, *args: object) -> int:
        if query != "SELECT 1":
            raise RuntimeError(f"the baseline touches no database: {query!r}")
        return 1

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        pass

    async def aclose(self) -> None:
        pass

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError(f"the baseline touches no storage ({name})")


class MemoryUsers(Users):
    def __init__(self, snap: Snapshot) -> None:
        self._snap = snap

    async def by_ids(
        self, ids: Sequence[int], *, viewer: int | None = None, lag_ok: bool = False
    ) -> list[User | None]:
        return [self._snap.users.get(i) for i in ids]


class MemoryPosts(Posts):
    def __init__(self, snap: Snapshot) -> None:
        self._snap = snap

    async def by_ids(
        self, ids: Sequence[int], *, viewer: int | None = None, lag_ok: bool = False
    ) -> list[Post | None]:
        # The snapshot holds only posts of captured pages, already visible to their viewer:
        # no block stands between them to filter.
        return [self._snap.posts.get(i) for i in ids]


class MemoryRelations(Relations):
    def __init__(self, snap: Snapshot) -> None:
        self._snap = snap

    async def follows_among(self, viewer: int, user_ids: Sequence[int], *, lag_ok: bool = False) -> set[int]:
        return {u for u in user_ids if (viewer, u) in self._snap.follows}


class MemoryLikes(Likes):
    def __init__(self, snap: Snapshot) -> None:
        self._snap = snap

    async def liked_among(self, user_id: int, post_ids: Sequence[int], *, lag_ok: bool = False) -> set[int]:
        return {p for p in post_ids if (user_id, p) in self._snap.likes}


class MemoryFeeds(Feeds):
    def __init__(self, snap: Snapshot, settings: Settings) -> None:
        self._snap = snap
        self.strategy = "baseline"
        self.size = settings.timeline_size

    async def close(self) -> None:
        """Nothing to close: the baseline holds no connections."""

    async def home(self, viewer: int, first: int, before: int | None) -> Page:
        page = self._snap.pages.get((viewer, before, check_first(first)))
        if page is None:
            raise InvalidInput("the baseline holds no such page (only the ones the bench captured)")
        return page


async def open_baseline_services(settings: Settings, snapshot: Path) -> Services:
    """Services whose reads come from the snapshot at `snapshot`; storage is never touched."""
    snap = Snapshot.load(snapshot)
    secret = config.jwt_secret(settings)
    pool = cast(asyncpg.Pool, _Untouched())
    redis = cast(Redis, _Untouched())
    posts = MemoryPosts(snap)
    feeds = MemoryFeeds(snap, settings)
    return Services(
        settings=settings,
        pool=pool,
        redis=redis,
        users=MemoryUsers(snap),
        posts=posts,
        relations=MemoryRelations(snap),
        likes=MemoryLikes(snap),
        feeds=feeds,
        cursors=Cursors(secret),
        tokens=Tokens(secret, settings.token_ttl_days * 86400),
        passwords=Passwords(),
        limits=Limits(redis, settings),
        notices=Notices(redis, settings.redis_prefix),
        live=LiveHub(redis, pool, posts, settings.redis_prefix),
        # The baseline captures LATEST pages only; a ranked read would touch the absent storage.
        ranker=Ranker(pool, cast(Feeds, feeds), Snapshots(redis, "", 1), Scorer(None), settings),
        impressions=ImpressionLog(pool, 0, 0),
    )
