"""Relay connections: a page of posts as the resolvers return it (a PostSlice), with its cursors.

The page itself is the connection's value: its fields read the page. So whatever returns a
page (a user's posts, the home feed) needs nothing from here but the type's name, and the
posts of a page are only built if the query asks for them.
"""

from __future__ import annotations

import strawberry

from homefeed.resolvers.connections import PostSlice
from homefeed.resolvers.context import Context
from homefeed.schema.posts import Post
from homefeed.schema.users import User

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
    posts = _posts_of(root, info.context)
    if scores is None:
        return [PostEdge(cursor=c, node=p) for (c, _), p in zip(root.edges, posts, strict=True)]
    return [
        PostEdge(cursor=c, node=p, score=scores.get(r.id))
        for (c, r), p in zip(root.edges, posts, strict=True)
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
    return _posts_of(root, info.context)


@strawberry.type(description="A page of posts, newest first, with keyset cursors.")
class PostConnection:
    edges: list[PostEdge] = strawberry.field(resolver=_edges)
    page_info: PageInfo = strawberry.field(resolver=_page_info)
    nodes: list[Post] = strawberry.field(resolver=_nodes)


def _posts_of(page: PostSlice, ctx: Context) -> list[Post]:
    """The posts of a page, with what the page's read knows about them. An author of several is
    built once (what a User holds depends only on the author): a page has fewer authors than
    posts, and building the User was nearly half of building a post (profiled)."""
    known, liked, followed, authors = page.known, page.liked, page.followed, page.authors
    users: dict[int, User] = {}
    posts = []
    for _, record in page.edges:
        if record.id not in known:
            posts.append(Post.of(record, ctx))
            continue
        author_id = record.author_id
        user = users.get(author_id)
        if user is None:
            author = authors.get(author_id)
            if author is not None:
                follows = None if followed is None else author_id in followed
                user = users[author_id] = User.of(author, ctx, follows=follows)
        posts.append(Post.of(record, ctx, liked=None if liked is None else record.id in liked, author=user))
    return posts
