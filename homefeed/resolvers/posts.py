"""Posts' resolvers: look-ups, the viewer's likes, publishing and deleting."""

from __future__ import annotations

from homefeed.feed.errors import NotFound
from homefeed.feed.records import Post, User
from homefeed.loaders import Loaders
from homefeed.resolvers.context import Context


async def post(ctx: Context, post_id: int) -> Post | None:
    """A live post by id."""
    return await (await ctx.loaders()).posts.load(post_id)


async def author(ctx: Context, post: Post, via: Loaders | None = None) -> User:
    """The author of a post (authors are never deleted while their posts exist)."""
    user = await (await ctx.loaders_or(via)).users.load(post.author_id)
    assert user is not None, f"post {post.id} has no author"
    return user


async def viewer_has_liked(ctx: Context, post_id: int, via: Loaders | None = None) -> bool:
    """Whether the viewer has liked post_id (False when anonymous)."""
    return await (await ctx.loaders_or(via)).viewer_liked.load(post_id)


async def _fresh_post(ctx: Context, post_id: int) -> Post:
    # Mutations change counters and flags: read them after the change, not from this request's cache.
    ctx.forget_loaded()
    post = await (await ctx.loaders()).posts.load(post_id)
    if post is None:
        raise NotFound("no such post")
    return post


async def create_post(ctx: Context, text: str) -> Post:
    """Publish a post; fan-out to followers happens after the answer, the author's own feed before it."""
    author = await ctx.require_writer()
    post = await ctx.services.posts.create(author, text)
    # Read your own writes: the author's next read (and live stream) shows the post without
    # waiting for fan-out. Best effort after the commit; the fan-out job does both again.
    if await ctx.services.feeds.own_post(author, post.id):
        # Followers in (-1, -1]: none; only the author's own subscriptions.
        await ctx.services.notices.post_reached(author, post.id, -1, -1, True)
    return post


async def delete_post(ctx: Context, post_id: int) -> bool:
    """Delete one of the viewer's posts."""
    viewer = await ctx.require_writer()
    await ctx.services.posts.delete(viewer, post_id)
    await ctx.services.notices.post_deleted(viewer, post_id)
    return True


async def like_post(ctx: Context, post_id: int) -> Post:
    await ctx.services.likes.like(await ctx.require_writer(), post_id)
    return await _fresh_post(ctx, post_id)


async def unlike_post(ctx: Context, post_id: int) -> Post:
    await ctx.services.likes.unlike(await ctx.require_writer(), post_id)
    return await _fresh_post(ctx, post_id)
