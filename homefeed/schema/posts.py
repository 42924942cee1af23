"""Posts and post connections."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Generic, TypeVar, cast

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


class Later(Generic[T]):
    """A field value loaded only if a query asks for it: an awaitable that starts its load when awaited.

    Fields known from the page's read (a home-feed post's author, the viewer's flags) are plain
    attributes, the cheapest fields to execute (no resolver, no `Info`, no argument parsing:
    about a fifth of a home-feed request's CPU went to those resolvers). Where the read did not
    know them, the attribute holds a Later; graphql-core awaits it like any resolver's result,
    so DataLoader batching across a page's posts is kept.
    """

    __slots__ = ("_load",)

    def __init__(self, load: Callable[[], Awaitable[T]]) -> None:
        self._load = load

    def __await__(self) -> Generator[Any, None, T]:
        return self._load().__await__()


def later(load: Callable[[], Awaitable[T]]) -> T:
    """A Later standing where the field's value goes (typed as the value it resolves to)."""
    return cast(T, Later(load))


# The page size when `first` is omitted or null; the contract types `first` as a nullable Int.
DEFAULT_FIRST = 20


@strawberry.type(description="A post of at most 280 characters.")
class Post(Node):
    # Plain attributes, not resolvers: a field without a resolver is the cheapest to execute.
    text: str
    created_at: datetime
    like_count: int
    author: Annotated[User, strawberry.lazy("homefeed.schema.users")]
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
        author: records.User | None = None,
        liked: bool | None = None,
        author_followed: bool | None = None,
    ) -> Post:
        """A post; what the caller's read already knows is set, the rest loads if asked for.

        `via`: loaders to load through instead of the request's (a live event's shared ones).
        """
        from homefeed.schema.users import User

        return cls(
            id=to_global_id("Post", record.id),
            text=record.text,
            created_at=record.created_at,
            like_count=record.like_count,
            author=(
                User.of(author, ctx, via, follows=author_followed)
                if author is not None
                else later(lambda: _load_author(ctx, record, via))
            ),
            viewer_has_liked=(
                liked if liked is not None else later(lambda: query.viewer_has_liked(ctx, record.id, via))
            ),
            record=record,
        )


async def _load_author(ctx: Context, record: records.Post, via: Loaders | None) -> User:
    from homefeed.schema.users import User

    return User.of(await query.author(ctx, record, via), ctx, via)


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
    def of(cls, page: PostSlice, ctx: Context) -> PostConnection:
        edges = [PostEdge(cursor=c, node=_post_of(p, page, ctx)) for c, p in page.edges]
        return cls(
            edges=edges,
            page_info=PageInfo(
                has_next_page=page.has_next,
                has_previous_page=page.has_previous,
                start_cursor=edges[0].cursor if edges else None,
                end_cursor=edges[-1].cursor if edges else None,
            ),
        )


def _post_of(record: records.Post, page: PostSlice, ctx: Context) -> Post:
    """A post of a page, with what the page's read knows about it."""
    if record.id not in page.known:
        return Post.of(record, ctx)
    liked, followed = page.liked, page.followed
    return Post.of(
        record,
        ctx,
        author=page.authors.get(record.author_id),
        liked=None if liked is None else record.id in liked,
        author_followed=None if followed is None else record.author_id in followed,
    )


@strawberry.type
class PostQuery:
    @strawberry.field(description="A live post by id; null if it does not exist or was deleted.")
    async def post(self, info: Info, id: strawberry.ID) -> Post | None:
        record = await query.post(info.context, expect_global_id(id, "Post"))
        return Post.of(record, info.context) if record else None


@strawberry.type
class PostMutation:
    @strawberry.mutation(description="Publish a post (1 to 280 characters after trimming).")
    async def create_post(self, info: Info, text: str) -> Post:
        return Post.of(await mutation.create_post(info.context, text), info.context)

    @strawberry.mutation(description="Delete one of your posts. Deleting it again is fine.")
    async def delete_post(self, info: Info, id: strawberry.ID) -> bool:
        return await mutation.delete_post(info.context, expect_global_id(id, "Post"))

    @strawberry.mutation
    async def like_post(self, info: Info, id: strawberry.ID) -> Post:
        return Post.of(await mutation.like_post(info.context, expect_global_id(id, "Post")), info.context)

    @strawberry.mutation
    async def unlike_post(self, info: Info, id: strawberry.ID) -> Post:
        return Post.of(await mutation.unlike_post(info.context, expect_global_id(id, "Post")), info.context)
