"""DataLoaders, built fresh per request so nothing is cached across viewers or requests."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from aiodataloader import DataLoader

from homefeed.feed.records import Post, User
from homefeed.feed.services import Services
from homefeed.feed.store.posts import AuthorPage

K = TypeVar("K")
V = TypeVar("V")
KC = TypeVar("KC", contravariant=True)


class Loader(Generic[K, V]):
    """A typed face on aiodataloader's DataLoader: one batch call per tick, values aligned with keys."""

    def __init__(self, batch: Callable[[Sequence[K]], Awaitable[Sequence[V]]], *, cache: bool = True) -> None:
        """`cache=False`: batched but not remembered, for values a long-lived context must read fresh."""

        async def run(keys: list[K]) -> list[V]:
            return list(await batch(keys))

        self._loader = DataLoader(batch_load_fn=run, max_batch_size=500, cache=cache)

    async def load(self, key: K) -> V:
        """The value for key, batched with every other load in this tick.

        Shielded: the cache hands one future to every field loading the same key, and the
        executor cancels a failed field's pending siblings. Unshielded, that cancellation would
        cancel the shared future itself, and every other field awaiting it (and the request)
        would end in CancelledError instead of the value.
        """
        value: V = await asyncio.shield(self._loader.load(key))
        return value

    def prime(self, key: K, value: V) -> None:
        """Seed the cache with a value read elsewhere, so loading it costs nothing."""
        self._loader.prime(key, value)

    async def load_many(self, keys: Sequence[K]) -> list[V]:
        """The values for keys, in one batch (shielded like `load`)."""
        values: list[V] = await asyncio.shield(self._loader.load_many(keys))
        return values


class KeyLoader(Protocol[KC, V]):
    """What resolvers need of a loader."""

    async def load(self, key: KC) -> V: ...

    async def load_many(self, keys: Sequence[KC]) -> list[V]: ...

    def prime(self, key: KC, value: V) -> None: ...


class Bound(Generic[K, V]):
    """A loader keyed by (viewer, key), seen by one viewer as a loader keyed by key."""

    def __init__(self, shared: Loader[tuple[int, K], V], viewer: int) -> None:
        self._shared = shared
        self._viewer = viewer

    async def load(self, key: K) -> V:
        return await self._shared.load((self._viewer, key))

    async def load_many(self, keys: Sequence[K]) -> list[V]:
        return await self._shared.load_many([(self._viewer, k) for k in keys])

    def prime(self, key: K, value: V) -> None:
        self._shared.prime((self._viewer, key), value)


@dataclass(frozen=True, slots=True)
class Loaders:
    users: KeyLoader[int, User | None]
    posts: KeyLoader[int, Post | None]
    viewer_follows: KeyLoader[int, bool]
    viewer_liked: KeyLoader[int, bool]
    # Pages of authors' posts, read fresh each time: a websocket's context outlives many events.
    author_posts: KeyLoader[AuthorPage, list[Post]]


def author_pages(services: Services, viewer_id: int | None) -> Loader[AuthorPage, list[Post]]:
    """Pages of authors' posts: every page asked for in one tick is one statement. For a viewer,
    an author with a block between them (either way) has an empty page, in that same statement."""

    async def pages(keys: Sequence[AuthorPage]) -> list[list[Post]]:
        # Uncached loaders pass repeated keys on (a page of one author's posts, each post asking
        # for its author's posts): read each distinct page once.
        distinct = list(dict.fromkeys(keys))
        read = dict(
            zip(
                distinct,
                await services.posts.by_authors(distinct, viewer=viewer_id, lag_ok=True),
                strict=True,
            )
        )
        return [read[k] for k in keys]

    return Loader(pages, cache=False)


def build(services: Services, viewer_id: int | None) -> Loaders:
    """Loaders for one request (or one subscription event) on behalf of viewer_id."""

    async def follows(user_ids: Sequence[int]) -> list[bool]:
        if viewer_id is None:
            return [False] * len(user_ids)
        found = await services.relations.follows_among(viewer_id, user_ids, lag_ok=True)
        return [u in found for u in user_ids]

    async def liked(post_ids: Sequence[int]) -> list[bool]:
        if viewer_id is None:
            return [False] * len(post_ids)
        found = await services.likes.liked_among(viewer_id, post_ids, lag_ok=True)
        return [p in found for p in post_ids]

    async def posts(post_ids: Sequence[int]) -> list[Post | None]:
        # Blocks hide both ways: a post whose author blocks the viewer, or is blocked by them,
        # reads as missing, filtered in the same statement that reads the posts.
        # A replica may answer (see Posts.by_ids): never a post the viewer may no longer see.
        return await services.posts.by_ids(post_ids, viewer=viewer_id, lag_ok=True)

    async def users(user_ids: Sequence[int]) -> list[User | None]:
        # A replica may answer (see Users.by_ids): with the viewer's own writes, counts included.
        return await services.users.by_ids(user_ids, viewer=viewer_id, lag_ok=True)

    return Loaders(
        users=Loader(users),
        posts=Loader(posts),
        viewer_follows=Loader(follows),
        viewer_liked=Loader(liked),
        author_posts=author_pages(services, viewer_id),
    )


@dataclass(frozen=True, slots=True)
class SharedLoaders:
    """Loaders shared by every subscriber receiving one live event: one batch for all of them."""

    users: Loader[int, User | None]
    posts: Loader[int, Post | None]
    follows: Loader[tuple[int, int], bool]
    liked: Loader[tuple[int, int], bool]
    author_posts: Loader[AuthorPage, list[Post]]

    def for_viewer(self, viewer: int) -> Loaders:
        """This event's loaders as one subscriber sees them."""
        return Loaders(
            self.users, self.posts, Bound(self.follows, viewer), Bound(self.liked, viewer), self.author_posts
        )


_per_event: weakref.WeakKeyDictionary[object, SharedLoaders] = weakref.WeakKeyDictionary()


def shared_for(services: Services, event: object) -> SharedLoaders:
    """The loaders of one live event, created by its first subscriber and shared by the rest."""
    found = _per_event.get(event)
    if found is None:

        async def follows(pairs: Sequence[tuple[int, int]]) -> list[bool]:
            hit = await services.relations.follow_pairs(pairs)
            return [p in hit for p in pairs]

        async def liked(pairs: Sequence[tuple[int, int]]) -> list[bool]:
            hit = await services.likes.liked_pairs(pairs)
            return [p in hit for p in pairs]

        # Shared by subscribers who are different viewers, so these read without a viewer's
        # blocks: the live hub drops an event for any subscriber with a block against its author.
        found = SharedLoaders(
            users=Loader(services.users.by_ids),
            posts=Loader(services.posts.by_ids),
            follows=Loader(follows),
            liked=Loader(liked),
            author_posts=author_pages(services, None),
        )
        _per_event[event] = found
    return found
