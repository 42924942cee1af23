"""The root types, composed from each family's parts, and global object lookup."""

from __future__ import annotations

import strawberry
from strawberry.tools import merge_types

from homefeed.resolvers import posts, users
from homefeed.resolvers.context import Context
from homefeed.schema.feed import FeedQuery
from homefeed.schema.live import FeedSubscription
from homefeed.schema.node import Node, parse_global_id
from homefeed.schema.posts import Post, PostMutation, PostQuery
from homefeed.schema.users import User, UserMutation, UserQuery

Info = strawberry.Info[Context, None]


@strawberry.type
class NodeQuery:
    @strawberry.field(description="Any object by its global id; null if it does not exist.")
    async def node(self, info: Info, id: strawberry.ID) -> Node | None:
        type_name, pk = parse_global_id(id)
        if type_name == "User":
            user = await users.user_by_id(info.context, pk)
            return User.of(user, info.context) if user else None
        if type_name == "Post":
            post = await posts.post(info.context, pk)
            return Post.of(post, info.context) if post else None
        return None


Query = merge_types("Query", (NodeQuery, UserQuery, PostQuery, FeedQuery))
Mutation = merge_types("Mutation", (UserMutation, PostMutation))
Subscription = merge_types("Subscription", (FeedSubscription,))
