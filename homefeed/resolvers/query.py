"""Query resolvers: look-ups and feeds. Thin: they call the engine and the loaders."""

from __future__ import annotations

from collections.abc import Callable

from homefeed.feed.errors import Unauthenticated
from homefeed.feed.records import Post, User
from homefeed.feed.store.users import HANDLE
from homefeed.loaders import Loaders
from homefeed.resolvers.connections import (
    PostSlice,
    author_scope,
    decode_after,
    home_scope,
    hydrate,
)
from homefeed.resolvers.context import GONE, Context


async def viewer(ctx: Context) -> User | None:
    """The signed-in user, None when anonymous."""
    viewer_id = await ctx.viewer_id()
    if viewer_id is None:
        return None
    return await (await ctx.loaders()).users.load(viewer_id)


async def user_by_id(ctx: Context, user_id: int) -> User | None:
    """A user by id."""
    return await (await ctx.loaders()).users.load(user_id)


async def user_by_handle(ctx: Context, handle: str) -> User | None:
    """A user by handle (case-insensitive); None for a handle that cannot exist."""
    handle = handle.strip().removeprefix("@")
    if not HANDLE.match(handle):
        return None
    return await ctx.services.users.by_handle(handle)


async def post(ctx: Context, post_id: int) -> Post | None:
    """A live post by id."""
    return await (await ctx.loaders()).posts.load(post_id)


async def home_feed(ctx: Context, first: int, after: str | None) -> PostSlice:
    """A page of the signed-in user's home feed."""
    viewer_id = ctx.claimed_viewer()
    if viewer_id is None:
        viewer_id = await ctx.require_viewer()  # raises: no token
    scope = home_scope(viewer_id)
    page = await ctx.services.feeds.home(viewer_id, first, decode_after(ctx, scope, after))
    # The feed read tells whether the token's user exists, which saves the request a look-up.
    if page.viewer_known is None:
        await ctx.require_viewer()
    elif not page.viewer_known:
        raise Unauthenticated(GONE)
    else:
        ctx.vouch(viewer_id)
    return await hydrate(ctx, scope, page, after=after)


async def user_posts(ctx: Context, author_id: int, first: int, after: str | None) -> PostSlice:
    """A page of one author's posts."""
    scope = author_scope(author_id)
    page = await ctx.services.feeds.author(author_id, first, decode_after(ctx, scope, after))
    return await hydrate(ctx, scope, page, after=after)


async def _loaders(ctx: Context, via: Loaders | None) -> Loaders:
    return via if via is not None else await ctx.loaders()


async def viewer_follows(ctx: Context, user_id: int, via: Loaders | None = None) -> bool:
    """Whether the viewer follows user_id (False when anonymous)."""
    return await (await _loaders(ctx, via)).viewer_follows.load(user_id)


async def viewer_has_liked(ctx: Context, post_id: int, via: Loaders | None = None) -> bool:
    """Whether the viewer has liked post_id (False when anonymous)."""
    return await (await _loaders(ctx, via)).viewer_liked.load(post_id)


async def user_count(
    ctx: Context, user_id: int, pick: Callable[[User], int | None], via: Loaders | None = None
) -> int:
    """One of an existing user's counts as stored now (for a user record read without them)."""
    user = await (await _loaders(ctx, via)).users.load(user_id)
    count = None if user is None else pick(user)
    assert count is not None, f"user {user_id} is gone"
    return count


async def author(ctx: Context, post: Post, via: Loaders | None = None) -> User:
    """The author of a post (authors are never deleted while their posts exist)."""
    user = await (await _loaders(ctx, via)).users.load(post.author_id)
    assert user is not None, f"post {post.id} has no author"
    return user
