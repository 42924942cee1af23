"""Relay connections: a page of posts as the resolvers return it (a PostSlice), with its cursors.

The page itself is the connection's value: its fields read the page. So whatever returns a
page (a user's posts, the home feed) needs nothing from here but the type's name, and the
posts of a page are only built if the query asks for them.
"""

from __future__ import annotations

import strawberry

from homefeed.feed import records
from homefeed.resolvers.connections import PostSlice
from homefeed.resolvers.context import Context
from homefeed.schema.posts import Post

Info = strawberry.Info[Context, None]


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
    score: float | None = strawberry.field(
        default=None, description="The post's ranking score on a RANKED page; null otherwise."
    )


def _edges(root: strawberry.Parent[PostSlice], info: Info) -> list[PostEdge]:
    scores = root.scores
    if scores is None:
        return [PostEdge(cursor=c, node=_post_of(p, root, info.context)) for c, p in root.edges]
    return [
        PostEdge(cursor=c, node=_post_of(p, root, info.context), score=scores.get(p.id))
        for c, p in root.edges
    ]


def _page_info(root: strawberry.Parent[PostSlice]) -> PageInfo:
    edges = root.edges
    return PageInfo(
        has_next_page=root.has_next,
        has_previous_page=root.has_previous,
        start_cursor=edges[0][0] if edges else None,
        end_cursor=edges[-1][0] if edges else None,
    )


def _nodes(root: strawberry.Parent[PostSlice], info: Info) -> list[Post]:
    return [_post_of(p, root, info.context) for _, p in root.edges]


@strawberry.type(description="A page of posts, newest first, with keyset cursors.")
class PostConnection:
    edges: list[PostEdge] = strawberry.field(resolver=_edges)
    page_info: PageInfo = strawberry.field(resolver=_page_info)
    nodes: list[Post] = strawberry.field(resolver=_nodes)


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
