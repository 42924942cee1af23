"""Turning a page of post ids into a hydrated, cursor-carrying slice."""

from __future__ import annotations

from dataclasses import dataclass

from homefeed.feed.records import Page, Post
from homefeed.resolvers.context import Context


@dataclass(frozen=True, slots=True)
class PostSlice:
    edges: list[tuple[str, Post]]
    has_next: bool
    has_previous: bool


def home_scope(viewer: int) -> str:
    """Cursor scope of a viewer's home feed."""
    return f"home:{viewer}"


def author_scope(author: int) -> str:
    """Cursor scope of an author's posts."""
    return f"posts:{author}"


def decode_after(ctx: Context, scope: str, after: str | None) -> int | None:
    """The post id an `after` cursor points at, None for the first page."""
    return None if after is None else ctx.services.cursors.decode(scope, after)


async def hydrate(ctx: Context, scope: str, page: Page, *, after: str | None) -> PostSlice:
    """Load the page's posts in one batch; a post deleted since the page was read is skipped."""
    loaders = await ctx.loaders()
    # What the page's read already fetched costs the loaders nothing: posts, their authors and,
    # when the read is the viewer's own feed, the viewer's likes and follows among them.
    for known in page.posts:
        loaders.posts.prime(known.id, known)
    for author in page.authors:
        loaders.users.prime(author.id, author)
    if page.liked is not None:
        for known in page.posts:
            loaders.viewer_liked.prime(known.id, known.id in page.liked)
    if page.followed is not None:
        for author in page.authors:
            loaders.viewer_follows.prime(author.id, author.id in page.followed)
    posts = await loaders.posts.load_many(page.post_ids)
    edges = [(ctx.services.cursors.encode(scope, p.id), p) for p in posts if p is not None]
    return PostSlice(edges=edges, has_next=page.has_next, has_previous=after is not None)
