"""The home feed."""

from __future__ import annotations

import strawberry

from homefeed.resolvers import query
from homefeed.resolvers.context import Context
from homefeed.schema.posts import DEFAULT_FIRST, PostConnection

Info = strawberry.Info[Context, None]


@strawberry.type
class FeedQuery:
    @strawberry.field(
        description="The signed-in user's home feed: their posts and their followees', newest first."
    )
    async def home_feed(
        self, info: Info, first: int | None = DEFAULT_FIRST, after: str | None = None
    ) -> PostConnection:
        page = await query.home_feed(info.context, DEFAULT_FIRST if first is None else first, after)
        return PostConnection.of(page)
