"""Live updates to the home feed."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from enum import Enum

import strawberry

from homefeed.resolvers import live, posts
from homefeed.resolvers.context import Context
from homefeed.schema import broadcast, cost, parked
from homefeed.schema.later import later
from homefeed.schema.node import to_global_id
from homefeed.schema.posts import Post
from homefeed.schema.users import User

Info = strawberry.Info[Context, None]


@strawberry.enum(description="What happened to the home feed.")
class FeedUpdateKind(Enum):
    ADDED = "ADDED"
    REMOVED = "REMOVED"
    RESYNC = strawberry.enum_value(
        "RESYNC", description="Updates were lost (slow client, server reconnect): refetch the feed."
    )


@strawberry.type(description="A change to the home feed. For RESYNC, postId is empty and post null.")
class FeedUpdate:
    kind: FeedUpdateKind
    post_id: strawberry.ID
    post: Post | None = strawberry.field(description="The post, for ADDED.")
    cursor: str | None = strawberry.field(description="The post's place in homeFeed, usable as `after`.")

    @classmethod
    def of(cls, update: live.Update, ctx: Context) -> FeedUpdate:
        return cls(
            kind=FeedUpdateKind(update.kind.value),
            post_id=to_global_id("Post", update.post_id) if update.post_id else strawberry.ID(""),
            post=Post.of(update.post, ctx, update.loaders) if update.post is not None else None,
            cursor=update.cursor,
        )


def _root(update: live.Update, ctx: Context, liked: bool, follows: bool, cursor: str | None) -> FeedUpdate:
    """The update of a group of subscribers who share the viewer-dependent values (broadcast.py)."""
    post = None
    if update.post is not None:
        post = Post.of(update.post, ctx, update.loaders, liked=liked)
        post.author = later(lambda: _author(update, ctx, follows))
    return _update(update, post, cursor)


async def _author(update: live.Update, ctx: Context, follows: bool) -> User:
    assert update.post is not None
    return User.of(await posts.author(ctx, update.post, update.loaders), ctx, update.loaders, follows=follows)


def _update(update: live.Update, post: Post | None, cursor: str | None) -> FeedUpdate:
    """As FeedUpdate.of builds it, with the given post and cursor."""
    return FeedUpdate(
        kind=FeedUpdateKind(update.kind.value),
        post_id=to_global_id("Post", update.post_id) if update.post_id else strawberry.ID(""),
        post=post,
        cursor=cursor,
    )


@strawberry.type
class FeedSubscription:
    @strawberry.subscription(description="Live changes to the signed-in user's home feed.")
    async def home_feed_updates(self, info: Info) -> AsyncGenerator[FeedUpdate, None]:
        # A document whose answer depends on the viewer only through the flags broadcast.py
        # batches is rendered once per event and group, not executed per subscriber.
        raw = info._raw_info
        shape = broadcast.shape_of(raw.operation, raw.fragments)
        # Started on a connection the hub can write to: it sends what it renders itself.
        outlet = broadcast.OUTLET.get() if shape is not None else None
        joining = None
        if shape is not None and outlet is not None:
            joining = broadcast.together(shape, info.schema, _root).joining(
                outlet, info.context, cost.REPORTED.get()
            )
        if joining is not None and outlet is not None and outlet.lot is not None and shape is not None:
            # The hub writes this subscription's events itself: keep it as a record, not this
            # stream (parked.py). The stream ends here without a `complete`.
            record = parked.Parked(joining, outlet.lot, outlet.operation_id, shape, info.schema, _root)
            await record.start()
            if not outlet.lot.park(outlet.operation_id, record):
                await record.stop()  # the client completed it meanwhile
            return
        async for update in live.home_feed_updates(info.context, joining):
            if shape is None:
                yield FeedUpdate.of(update, info.context)
            else:
                yield await broadcast.render(shape, info.schema, update, info.context, _root)  # type: ignore[misc]
