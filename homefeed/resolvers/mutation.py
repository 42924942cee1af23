"""Mutation resolvers: authenticate, rate-limit, call the engine, return fresh records."""

from __future__ import annotations

from dataclasses import dataclass

from homefeed.feed.auth import check_password
from homefeed.feed.errors import NotFound, Unauthenticated
from homefeed.feed.records import Post, User
from homefeed.feed.store.users import clean_display_name, clean_handle
from homefeed.resolvers.context import Context


@dataclass(frozen=True, slots=True)
class Session:
    token: str
    user: User


async def _writer(ctx: Context) -> int:
    viewer = await ctx.require_viewer()
    await ctx.services.limiter.hit(f"w:{viewer}")
    return viewer


async def _fresh_user(ctx: Context, user_id: int) -> User:
    # Mutations change counters and flags: read them after the change, not from this request's cache.
    ctx.forget_loaded()
    user = await (await ctx.loaders()).users.load(user_id)
    if user is None:
        raise NotFound("no such user")
    return user


async def _fresh_post(ctx: Context, post_id: int) -> Post:
    ctx.forget_loaded()
    post = await (await ctx.loaders()).posts.load(post_id)
    if post is None:
        raise NotFound("no such post")
    return post


async def sign_up(ctx: Context, handle: str, password: str, display_name: str | None) -> Session:
    """Create an account and return a session for it."""
    await ctx.services.limiter.hit(f"signup:{ctx.client_key}")
    handle = clean_handle(handle)
    name = clean_display_name(display_name, handle)
    hashed = await ctx.services.passwords.hash(check_password(password))
    user = await ctx.services.users.create(handle, name, hashed)
    return Session(ctx.services.tokens.issue(user.id), user)


async def log_in(ctx: Context, handle: str, password: str) -> Session:
    """Exchange a handle and password for a session."""
    await ctx.services.limiter.hit(f"login:{handle.strip().lower()[:40]}")
    found = await ctx.services.users.credentials(handle.strip().removeprefix("@"))
    ok = await ctx.services.passwords.verify(found[1] if found else None, password)
    if not ok or found is None:
        raise Unauthenticated("wrong handle or password")
    return Session(ctx.services.tokens.issue(found[0].id), found[0])


async def create_post(ctx: Context, text: str) -> Post:
    """Publish a post; fan-out happens after the answer."""
    return await ctx.services.posts.create(await _writer(ctx), text)


async def delete_post(ctx: Context, post_id: int) -> bool:
    """Delete one of the viewer's posts."""
    viewer = await _writer(ctx)
    await ctx.services.posts.delete(viewer, post_id)
    await ctx.services.notices.post_deleted(viewer, post_id)
    return True


async def _announce(ctx: Context, viewer: int, other: int, verb: str, *, both: bool = False) -> None:
    # Live subscribers re-read their relationships and drop what they may no longer see.
    await ctx.services.notices.relation_changed(viewer, other, verb)
    if both:
        await ctx.services.notices.relation_changed(other, viewer, verb)


async def follow(ctx: Context, user_id: int) -> User:
    viewer = await _writer(ctx)
    await ctx.services.relations.follow(viewer, user_id)
    # The followee's posts show on the very next read; the outbox job repeats this durably.
    await ctx.services.feeds.after_follow_change(viewer, user_id)
    await _announce(ctx, viewer, user_id, "follow")
    return await _fresh_user(ctx, user_id)


async def unfollow(ctx: Context, user_id: int) -> User:
    viewer = await _writer(ctx)
    await ctx.services.relations.unfollow(viewer, user_id)
    await ctx.services.feeds.after_follow_change(viewer, user_id)
    await _announce(ctx, viewer, user_id, "unfollow")
    return await _fresh_user(ctx, user_id)


async def block(ctx: Context, user_id: int) -> User:
    viewer = await _writer(ctx)
    await ctx.services.relations.block(viewer, user_id)
    await _announce(ctx, viewer, user_id, "block", both=True)
    return await _fresh_user(ctx, user_id)


async def unblock(ctx: Context, user_id: int) -> User:
    viewer = await _writer(ctx)
    await ctx.services.relations.unblock(viewer, user_id)
    await _announce(ctx, viewer, user_id, "unblock", both=True)
    return await _fresh_user(ctx, user_id)


async def mute(ctx: Context, user_id: int) -> User:
    viewer = await _writer(ctx)
    await ctx.services.relations.mute(viewer, user_id)
    await _announce(ctx, viewer, user_id, "mute")
    return await _fresh_user(ctx, user_id)


async def unmute(ctx: Context, user_id: int) -> User:
    viewer = await _writer(ctx)
    await ctx.services.relations.unmute(viewer, user_id)
    await _announce(ctx, viewer, user_id, "unmute")
    return await _fresh_user(ctx, user_id)


async def like_post(ctx: Context, post_id: int) -> Post:
    await ctx.services.likes.like(await _writer(ctx), post_id)
    return await _fresh_post(ctx, post_id)


async def unlike_post(ctx: Context, post_id: int) -> Post:
    await ctx.services.likes.unlike(await _writer(ctx), post_id)
    return await _fresh_post(ctx, post_id)
