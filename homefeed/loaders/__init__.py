"""DataLoaders, built fresh per request so nothing is cached across viewers or requests."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from aiodataloader import DataLoader

from homefeed.feed.records import Post, User
from homefeed.feed.services import Services

K = TypeVar("K")
V = TypeVar("V")


class Loader(Generic[K, V]):
    """A typed face on aiodataloader's DataLoader: one batch call per tick, values aligned with keys."""

    def __init__(self, batch: Callable[[Sequence[K]], Awaitable[Sequence[V]]]) -> None:
        async def run(keys: list[K]) -> list[V]:
            return list(await batch(keys))

        self._loader = DataLoader(batch_load_fn=run, max_batch_size=500)

    async def load(self, key: K) -> V:
        """The value for key, batched with every other load in this tick."""
        value: V = await self._loader.load(key)
        return value

    def prime(self, key: K, value: V) -> None:
        """Seed the cache with a value read elsewhere, so loading it costs nothing."""
        self._loader.prime(key, value)

    async def load_many(self, keys: Sequence[K]) -> list[V]:
        """The values for keys, in one batch."""
        values: list[V] = await self._loader.load_many(keys)
        return values


@dataclass(frozen=True, slots=True)
class Loaders:
    users: Loader[int, User | None]
    posts: Loader[int, Post | None]
    viewer_follows: Loader[int, bool]
    viewer_liked: Loader[int, bool]


def build(services: Services, viewer_id: int | None) -> Loaders:
    """Loaders for one request (or one subscription event) on behalf of viewer_id."""

    async def follows(user_ids: Sequence[int]) -> list[bool]:
        if viewer_id is None:
            return [False] * len(user_ids)
        found = await services.relations.follows_among(viewer_id, user_ids)
        return [u in found for u in user_ids]

    async def liked(post_ids: Sequence[int]) -> list[bool]:
        if viewer_id is None:
            return [False] * len(post_ids)
        found = await services.likes.liked_among(viewer_id, post_ids)
        return [p in found for p in post_ids]

    return Loaders(
        users=Loader(services.users.by_ids),
        posts=Loader(services.posts.by_ids),
        viewer_follows=Loader(follows),
        viewer_liked=Loader(liked),
    )
