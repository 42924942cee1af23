"""Posts: the type, look-ups, and publishing, deleting and liking."""

from __future__ import annotations

from datetime import datetime

import strawberry

from homefeed.feed import records
from homefeed.loaders import Loaders
from homefeed.resolvers import posts
from homefeed.resolvers.context import Context
from homefeed.schema.later import later
from homefeed.schema.node import Node, expect_global_id, to_global_id
from homefeed.schema.users import User

Info = strawberry.Info[Context, None]


@strawberry.type(description="A post of at most 280 characters.")
class Post(Node):
    # Plain attributes, not resolvers: a field without a resolver is the cheapest to execute.
    text: str
    created_at: datetime
    like_count: int
    author: User
    viewer_has_liked: bool = strawberry.field(
        description="Whether the signed-in user likes this post (false when anonymous)."
    )
    record: strawberry.Private[records.Post]

    @classmethod
    def of(
        cls,
        record: records.Post,
        ctx: Context,
        via: Loaders | None = None,
        *,
        liked: bool | None = None,
        author: User | None = None,
    ) -> Post:
        """A post; what the caller's read already knows is set, the rest loads if asked for.

        `via`: loaders to load through instead of the request's (a live event's shared ones).
        `author`: its author already built (a page's posts by one author share one).
        """
        return cls(
            id=to_global_id("Post", record.id),
            text=record.text,
            created_at=record.created_at,
            like_count=record.like_count,
            author=author if author is not None else later(lambda: _load_author(ctx, record, via)),
            viewer_has_liked=(
                liked if liked is not None else later(lambda: posts.viewer_has_liked(ctx, record.id, via))
            ),
            record=record,
        )


async def _load_author(ctx: Context, record: records.Post, via: Loaders | None) -> User:
    return User.of(await posts.author(ctx, record, via), ctx, via)


@strawberry.type
class PostQuery:
    @strawberry.field(description="A live post by id; null if it does not exist or was deleted.")
    async def post(self, info: Info, id: strawberry.ID) -> Post | None:
        record = await posts.post(info.context, expect_global_id(id, "Post"))
        return Post.of(record, info.context) if record else None


@strawberry.type
class PostMutation:
    @strawberry.mutation(description="Publish a post (1 to 280 characters after trimming).")
    async def create_post(self, info: Info, text: str) -> Post:
        return Post.of(await posts.create_post(info.context, text), info.context)

    @strawberry.mutation(description="Delete one of your posts. Deleting it again is fine.")
    async def delete_post(self, info: Info, id: strawberry.ID) -> bool:
        return await posts.delete_post(info.context, expect_global_id(id, "Post"))

    @strawberry.mutation
    async def like_post(self, info: Info, id: strawberry.ID) -> Post:
        return Post.of(await posts.like_post(info.context, expect_global_id(id, "Post")), info.context)

    @strawberry.mutation
    async def unlike_post(self, info: Info, id: strawberry.ID) -> Post:
        return Post.of(await posts.unlike_post(info.context, expect_global_id(id, "Post")), info.context)
