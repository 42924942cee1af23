"""Posts and post connections."""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, TypeVar, cast

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
T = TypeVar("T")


def resolve_later(load: Awaitable[T]) -> T:
    """Return a loader's awaitable from a plain (non-async) resolver; graphql-core awaits it.

    For fields mostly answered from what the page's read fetched: a plain function returning a
    value costs GraphQL execution far less than a coroutine (no task, no gather per list), so
    only the fallback pays for awaiting. Typed as the value, which is what the field resolves to.
    """
    return cast(T, load)


# The page size when `first` is omitted or null; the contract types `first` as a nullable Int.
DEFAULT_FIRST = 20


@strawberry.type(description="A post of at most 280 characters.")
class Post(Node):
    # Plain attributes, not resolvers: a field without a resolver is the cheapest to execute.
    text: str
    created_at: datetime
    like_count: int
    record: strawberry.Private[records.Post]
    # Loaders to resolve through instead of the request's (a live event's shared ones).
    via: strawberry.Private[Loaders | None] = None
    # Known from the page's read (a home feed page), else loaded when asked for.
    known_author: strawberry.Private[records.User | None] = None
    known_liked: strawberry.Private[bool | None] = None
    known_author_followed: strawberry.Private[bool | None] = None

    @classmethod
    def of(
        cls,
        record: records.Post,
        via: Loaders | None = None,
        *,
        author: records.User | None = None,
        liked: bool | None = None,
        author_followed: bool | None = None,
    ) -> Post:
        return cls(
            id=to_global_id("Post", record.id),
            text=record.text,
            created_at=record.created_at,
            like_count=record.like_count,
            record=record,
            via=via,
            known_author=author,
            known_liked=liked,
            known_author_followed=author_followed,
        )

    @strawberry.field
    def author(self, info: Info) -> Annotated[User, strawberry.lazy("homefeed.schema.users")]:
        from homefeed.schema.users import User

        if self.known_author is not None:
            return User.of(self.known_author, self.via, follows=self.known_author_followed)
        return resolve_later(self._load_author(info))

    async def _load_author(self, info: Info) -> User:
        from homefeed.schema.users import User

        return User.of(await query.author(info.context, self.record, self.via), self.via)

    @strawberry.field(description="Whether the signed-in user likes this post (false when anonymous).")
    def viewer_has_liked(self, info: Info) -> bool:
        if self.known_liked is not None:
            return self.known_liked
        return resolve_later(query.viewer_has_liked(info.context, self.record.id, self.via))


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
        edges = [PostEdge(cursor=c, node=_post_of(p, page)) for c, p in page.edges]
        return cls(
            edges=edges,
            page_info=PageInfo(
                has_next_page=page.has_next,
                has_previous_page=page.has_previous,
                start_cursor=edges[0].cursor if edges else None,
                end_cursor=edges[-1].cursor if edges else None,
            ),
        )


def _post_of(record: records.Post, page: PostSlice) -> Post:
    """A post of a page, with what the page's read knows about it."""
    if record.id not in page.known:
        return Post.of(record)
    liked, followed = page.liked, page.followed
    return Post.of(
        record,
        author=page.authors.get(record.author_id),
        liked=None if liked is None else record.id in liked,
        author_followed=None if followed is None else record.author_id in followed,
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
