"""Live updates to the home feed."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from enum import Enum

import strawberry

from homefeed.resolvers import live
from homefeed.resolvers.context import Context
from homefeed.schema.node import to_global_id
from homefeed.schema.posts import Post

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


@strawberry.type
class FeedSubscription:
    @strawberry.subscription(description="Live changes to the signed-in user's home feed.")
    async def home_feed_updates(self, info: Info) -> AsyncGenerator[FeedUpdate, None]:
        async for update in live.home_feed_updates(info.context):
            yield FeedUpdate.of(update, info.context)
