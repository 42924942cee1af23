"""The home feed."""

from __future__ import annotations

from enum import Enum

import strawberry

from homefeed.resolvers import feed
from homefeed.resolvers.connections import DEFAULT_FIRST, PostSlice
from homefeed.resolvers.context import Context
from homefeed.schema.connections import PostConnection

Info = strawberry.Info[Context, None]


@strawberry.enum(description="The home feed's order.")
class FeedOrder(Enum):
    LATEST = strawberry.enum_value("LATEST", description="Newest first.")
    RANKED = strawberry.enum_value(
        "RANKED",
        description="For You: recent posts ranked by predicted interest, author-diverse; pages come "
        "from a snapshot taken by the first page, then continue newest first.",
    )


@strawberry.type
class FeedQuery:
    @strawberry.field(
        description="The signed-in user's home feed: their posts and their followees', newest first "
        "(LATEST) or ranked (RANKED).",
        graphql_type=PostConnection,
    )
    async def home_feed(
        self,
        info: Info,
        first: int | None = DEFAULT_FIRST,
        after: str | None = None,
        order: FeedOrder | None = FeedOrder.LATEST,
    ) -> PostSlice:
        if order is FeedOrder.RANKED:
            return await feed.ranked_feed(info.context, first, after)
        return await feed.home_feed(info.context, first, after)
