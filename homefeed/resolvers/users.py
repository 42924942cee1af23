"""Users' resolvers: look-ups, sessions, relationships, and a user's posts."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from homefeed.feed.auth import check_password
from homefeed.feed.errors import NotFound, Unauthenticated
from homefeed.feed.feeds import check_first
from homefeed.feed.records import Page, User
from homefeed.feed.store.posts import AuthorPage
from homefeed.feed.store.users import HANDLE, clean_display_name, clean_handle, handle_key
from homefeed.loaders import Loaders
from homefeed.resolvers.connections import PostSlice, author_scope, decode_after, hydrate, page_size
from homefeed.resolvers.context import Context


@dataclass(frozen=True, slots=True)
class Session:
    token: str
    user: User


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
    handle = handle_key(handle)
    if not HANDLE.match(handle):
        return None
    return await ctx.services.users.by_handle(handle)


async def user_posts(ctx: Context, author_id: int, first: int | None, after: str | None) -> PostSlice:
    """A page of one author's posts, batched with every other author's page asked for in the same tick
    (a page of posts asking for their authors' posts is one statement, not one per author)."""
    scope = author_scope(author_id)
    size = check_first(page_size(first))
    before = decode_after(ctx, scope, after)
    # One more than the page, to tell whether another page follows.
    read = await (await ctx.loaders()).author_posts.load(AuthorPage(author_id, before, size + 1))
    shown = read[:size]
    page = Page([p.id for p in shown], len(read) > size, posts=tuple(shown))
    return await hydrate(ctx, scope, page, after=after)


async def viewer_follows(ctx: Context, user_id: int, via: Loaders | None = None) -> bool:
    """Whether the viewer follows user_id (False when anonymous)."""
    return await (await ctx.loaders_or(via)).viewer_follows.load(user_id)


async def user_count(
    ctx: Context, user_id: int, pick: Callable[[User], int | None], via: Loaders | None = None
) -> int:
    """One of an existing user's counts as stored now (for a user record read without them)."""
    user = await (await ctx.loaders_or(via)).users.load(user_id)
    count = None if user is None else pick(user)
    assert count is not None, f"user {user_id} is gone"
    return count


async def sign_up(ctx: Context, handle: str, password: str, display_name: str | None) -> Session:
    """Create an account and return a session for it."""
    await ctx.services.limits.sign_up(ctx.client_key)
    handle = clean_handle(handle)
    name = clean_display_name(display_name, handle)
    hashed = await ctx.services.passwords.hash(check_password(password))
    user = await ctx.services.users.create(handle, name, hashed)
    return Session(ctx.services.tokens.issue(user.id), user)


async def log_in(ctx: Context, handle: str, password: str) -> Session:
    """Exchange a handle and password for a session. Attempts count per (client address, handle)
    and per client address, never per handle alone: nobody elsewhere can lock its owner out."""
    key = handle_key(handle)
    # The bucket and the look-up take the very same key: "@Alice " and "alice" are one handle.
    await ctx.services.limits.log_in(ctx.client_key, key)
    found = await ctx.services.users.credentials(key)
    ok = await ctx.services.passwords.verify(found[1] if found else None, password)
    if not ok or found is None:
        raise Unauthenticated("wrong handle or password")
    return Session(ctx.services.tokens.issue(found[0].id), found[0])


async def _fresh_user(ctx: Context, user_id: int) -> User:
    # Mutations change counters and flags: read them after the change, not from this request's cache.
    ctx.forget_loaded()
    user = await (await ctx.loaders()).users.load(user_id)
    if user is None:
        raise NotFound("no such user")
    return user


async def _announce(ctx: Context, viewer: int, other: int, verb: str, *, both: bool = False) -> None:
    # Live subscribers re-read their relationships and drop what they may no longer see.
    await ctx.services.notices.relation_changed(viewer, other, verb)
    if both:
        await ctx.services.notices.relation_changed(other, viewer, verb)


async def follow(ctx: Context, user_id: int) -> User:
    viewer = await ctx.require_writer()
    await ctx.services.relations.follow(viewer, user_id)
    # The followee's posts show on the very next read; the outbox job repeats this durably.
    await ctx.services.feeds.after_follow_change(viewer, user_id)
    await _announce(ctx, viewer, user_id, "follow")
    return await _fresh_user(ctx, user_id)


async def unfollow(ctx: Context, user_id: int) -> User:
    viewer = await ctx.require_writer()
    await ctx.services.relations.unfollow(viewer, user_id)
    await ctx.services.feeds.after_follow_change(viewer, user_id)
    await _announce(ctx, viewer, user_id, "unfollow")
    return await _fresh_user(ctx, user_id)


async def block(ctx: Context, user_id: int) -> User:
    viewer = await ctx.require_writer()
    await ctx.services.relations.block(viewer, user_id)
    await _announce(ctx, viewer, user_id, "block", both=True)
    return await _fresh_user(ctx, user_id)


async def unblock(ctx: Context, user_id: int) -> User:
    viewer = await ctx.require_writer()
    await ctx.services.relations.unblock(viewer, user_id)
    await _announce(ctx, viewer, user_id, "unblock", both=True)
    return await _fresh_user(ctx, user_id)


async def mute(ctx: Context, user_id: int) -> User:
    viewer = await ctx.require_writer()
    await ctx.services.relations.mute(viewer, user_id)
    await _announce(ctx, viewer, user_id, "mute")
    return await _fresh_user(ctx, user_id)


async def unmute(ctx: Context, user_id: int) -> User:
    viewer = await ctx.require_writer()
    await ctx.services.relations.unmute(viewer, user_id)
    await _announce(ctx, viewer, user_id, "unmute")
    return await _fresh_user(ctx, user_id)
