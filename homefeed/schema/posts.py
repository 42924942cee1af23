"""Posts and post connections."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry

from homefeed.feed import records
from homefeed.loaders import Loaders
from homefeed.resolvers import mutation, query
from homefeed.resolvers.connections import PostSlice
from homefeed.resolvers.context import Context
from homefeed.schema.node import Node, expect_global_id, to_global_id

if TYPE_CHECKING:
    from homefeed.schema.users import User

Info = strawberry.Info[Context, None]

# The page size when `first` is omitted or null; the contract types `first` as a nullable Int.
DEFAULT_FIRST = 20


@strawberry.type(description="A post of at most 280 characters.")
class Post(Node):
    record: strawberry.Private[records.Post]
    # Loaders to resolve through instead of the request's (a live event's shared ones).
    via: strawberry.Private[Loaders | None] = None

    @classmethod
    def of(cls, record: records.Post, via: Loaders | None = None) -> Post:
        return cls(id=to_global_id("Post", record.id), record=record, via=via)

    @strawberry.field
    def text(self) -> str:
        return self.record.text

    @strawberry.field
    def created_at(self) -> datetime:
        return self.record.created_at

    @strawberry.field
    def like_count(self) -> int:
        return self.record.like_count

    @strawberry.field
    async def author(self, info: Info) -> Annotated[User, strawberry.lazy("homefeed.schema.users")]:
        from homefeed.schema.users import User

        return User.of(await query.author(info.context, self.record, self.via), self.via)

    @strawberry.field(description="Whether the signed-in user likes this post (false when anonymous).")
    async def viewer_has_liked(self, info: Info) -> bool:
        return await query.viewer_has_liked(info.context, self.record.id, self.via)


@strawberry.type
class PageInfo:
    has_next_page: bool
    has_previous_page: bool
    start_cursor: str | None
    end_cursor: str | None


@strawberry.type
class PostEdge:
    cursor: str
    node: Post


@strawberry.type(description="A page of posts, newest first, with keyset cursors.")
class PostConnection:
    edges: list[PostEdge]
    page_info: PageInfo

    @strawberry.field
    def nodes(self) -> list[Post]:
        return [e.node for e in self.edges]

    @classmethod
    def of(cls, page: PostSlice) -> PostConnection:
        edges = [PostEdge(cursor=c, node=Post.of(p)) for c, p in page.edges]
        return cls(
            edges=edges,
            page_info=PageInfo(
                has_next_page=page.has_next,
                has_previous_page=page.has_previous,
                start_cursor=edges[0].cursor if edges else None,
                end_cursor=edges[-1].cursor if edges else None,
            ),
        )


@strawberry.type
class PostQuery:
    @strawberry.field(description="A live post by id; null if it does not exist or was deleted.")
    async def post(self, info: Info, id: strawberry.ID) -> Post | None:
        record = await query.post(info.context, expect_global_id(id, "Post"))
        return Post.of(record) if record else None


@strawberry.type
class PostMutation:
    @strawberry.mutation(description="Publish a post (1 to 280 characters after trimming).")
    async def create_post(self, info: Info, text: str) -> Post:
        return Post.of(await mutation.create_post(info.context, text))

    @strawberry.mutation(description="Delete one of your posts. Deleting it again is fine.")
    async def delete_post(self, info: Info, id: strawberry.ID) -> bool:
        return await mutation.delete_post(info.context, expect_global_id(id, "Post"))

    @strawberry.mutation
    async def like_post(self, info: Info, id: strawberry.ID) -> Post:
        return Post.of(await mutation.like_post(info.context, expect_global_id(id, "Post")))

    @strawberry.mutation
    async def unlike_post(self, info: Info, id: strawberry.ID) -> Post:
        return Post.of(await mutation.unlike_post(info.context, expect_global_id(id, "Post")))
