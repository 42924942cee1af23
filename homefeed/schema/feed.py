"""The home feed."""

from __future__ import annotations

import strawberry

from homefeed.resolvers import feed
from homefeed.resolvers.connections import DEFAULT_FIRST, PostSlice
from homefeed.resolvers.context import Context
from homefeed.schema.connections import PostConnection

Info = strawberry.Info[Context, None]


@strawberry.type
class FeedQuery:
    @strawberry.field(
        description="The signed-in user's home feed: their posts and their followees', newest first.",
        graphql_type=PostConnection,
    )
    async def home_feed(
        self, info: Info, first: int | None = DEFAULT_FIRST, after: str | None = None
    ) -> PostSlice:
        return await feed.home_feed(info.context, first, after)
