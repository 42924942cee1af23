"""Turning a page of post ids into a hydrated, cursor-carrying slice."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from homefeed.feed.records import Page, Post, User
from homefeed.resolvers.context import Context

# The page size when `first` is omitted or null; the contract types `first` as a nullable Int.
DEFAULT_FIRST = 20


def page_size(first: int | None) -> int:
    """The page size a client asked for, or the default."""
    return DEFAULT_FIRST if first is None else first


@dataclass(frozen=True, slots=True)
class PostSlice:
    edges: list[tuple[str, Post]]
    has_next: bool
    has_previous: bool
    # What the page's read already knows, so the schema answers without loaders: for the posts
    # in `known`, their authors, and the viewer's likes (of them) and follows (of their authors).
    known: frozenset[int] = frozenset()
    authors: dict[int, User] = field(default_factory=dict)
    liked: frozenset[int] | None = None
    followed: frozenset[int] | None = None
    # RANKED pages: each ranked post's score (posts past the ranked snapshot have none).
    scores: Mapping[int, float] | None = None


def home_scope(viewer: int) -> str:
    """Cursor scope of a viewer's home feed."""
    return f"home:{viewer}"


def author_scope(author: int) -> str:
    """Cursor scope of an author's posts."""
    return f"posts:{author}"


def decode_after(ctx: Context, scope: str, after: str | None) -> int | None:
    """The post id an `after` cursor points at, None for the first page."""
    return None if after is None else ctx.services.cursors.decode(scope, after)


async def hydrate(
    ctx: Context,
    scope: str,
    page: Page,
    *,
    after: str | None,
    cursors: Mapping[int, str] | None = None,
    scores: Mapping[int, float] | None = None,
) -> PostSlice:
    """The page's posts, with what its read already knows about them; the rest are loaded in one
    batch, and a post deleted since the page was read is skipped. Cursors are the post ids in
    `scope`, unless given per post."""
    read: dict[int, Post | None] = {p.id: p for p in page.posts}
    missing = [i for i in page.post_ids if i not in read]
    if missing:
        loaded = await (await ctx.loaders()).posts.load_many(missing)
        read.update(zip(missing, loaded, strict=True))
    encode = ctx.services.cursors.encode
    shown = (p for p in (read[i] for i in page.post_ids) if p is not None)
    if cursors is None:
        edges = [(encode(scope, p.id), p) for p in shown]
    else:
        edges = [(cursors[p.id], p) for p in shown]
    return PostSlice(
        edges=edges,
        has_next=page.has_next,
        has_previous=after is not None,
        known=frozenset(p.id for p in page.posts),
        authors={a.id: a for a in page.authors},
        liked=page.liked,
        followed=page.followed,
        scores=scores,
    )
