"""Users, sessions and the relationships between users."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from operator import attrgetter

import strawberry

from homefeed.feed import records
from homefeed.loaders import Loaders
from homefeed.resolvers import users
from homefeed.resolvers.connections import DEFAULT_FIRST, PostSlice
from homefeed.resolvers.context import Context
from homefeed.schema.later import later
from homefeed.schema.node import Node, expect_global_id, to_global_id

Info = strawberry.Info[Context, None]

_FOLLOWERS = attrgetter("follower_count")
_FOLLOWING = attrgetter("following_count")

# The GraphQL type of a user's posts, by name: the types form a circle (a user's posts, each
# post's author) that the modules do not, since a post knows its author's type (posts.py
# imports this module) while a user's posts are a page, which connections.py presents.
_POST_CONNECTION: strawberry.LazyType[str, str] = strawberry.LazyType(
    "PostConnection", "homefeed.schema.connections"
)


@strawberry.type(description="A person who posts and follows.")
class User(Node):
    # Plain attributes, not resolvers: a field without a resolver is the cheapest to execute.
    handle: str
    display_name: str
    created_at: datetime

    # Resolvers, since a feed page's authors come without their counts (see feed/store/authors.py):
    # an attribute would have to hold a loader for every author of every page, asked or not.
    @strawberry.field
    def follower_count(self) -> int:
        return self._count(_FOLLOWERS)

    @strawberry.field
    def following_count(self) -> int:
        return self._count(_FOLLOWING)

    viewer_follows: bool = strawberry.field(
        description="Whether the signed-in user follows this user (false when anonymous)."
    )
    record: strawberry.Private[records.User]
    ctx: strawberry.Private[Context]
    via: strawberry.Private[Loaders | None]

    @classmethod
    def of(
        cls, record: records.User, ctx: Context, via: Loaders | None = None, *, follows: bool | None = None
    ) -> User:
        """A user; `follows` if the caller's read knows it, else loaded if asked for (through `via`)."""
        return cls(
            id=to_global_id("User", record.id),
            handle=record.handle,
            display_name=record.display_name,
            created_at=record.created_at,
            viewer_follows=(
                follows if follows is not None else later(lambda: users.viewer_follows(ctx, record.id, via))
            ),
            record=record,
            ctx=ctx,
            via=via,
        )

    def _count(self, pick: Callable[[records.User], int | None]) -> int:
        """A count from the record if it has it, else loaded as it is now."""
        count = pick(self.record)
        return (
            count
            if count is not None
            else later(lambda: users.user_count(self.ctx, self.record.id, pick, self.via))
        )

    @strawberry.field(description="This user's posts, newest first.", graphql_type=_POST_CONNECTION)
    async def posts(
        self, info: Info, first: int | None = DEFAULT_FIRST, after: str | None = None
    ) -> PostSlice:
        return await users.user_posts(info.context, self.record.id, first, after)


@strawberry.type
class AuthPayload:
    token: str = strawberry.field(description="Send as `Authorization: Bearer <token>`.")
    user: User

    @classmethod
    def of(cls, session: users.Session, ctx: Context) -> AuthPayload:
        return cls(token=session.token, user=User.of(session.user, ctx))


@strawberry.type
class UserQuery:
    @strawberry.field(description="The signed-in user; null when anonymous.")
    async def viewer(self, info: Info) -> User | None:
        record = await users.viewer(info.context)
        return User.of(record, info.context) if record else None

    @strawberry.field(description="A user by handle, ignoring letter case.")
    async def user(self, info: Info, handle: str) -> User | None:
        record = await users.user_by_handle(info.context, handle)
        return User.of(record, info.context) if record else None


def _target(user_id: strawberry.ID) -> int:
    return expect_global_id(user_id, "User")


@strawberry.type
class UserMutation:
    @strawberry.mutation(description="Create an account. Handles: 1-30 letters, digits, underscores.")
    async def sign_up(
        self, info: Info, handle: str, password: str, display_name: str | None = None
    ) -> AuthPayload:
        return AuthPayload.of(await users.sign_up(info.context, handle, password, display_name), info.context)

    @strawberry.mutation
    async def log_in(self, info: Info, handle: str, password: str) -> AuthPayload:
        return AuthPayload.of(await users.log_in(info.context, handle, password), info.context)

    @strawberry.mutation
    async def follow(self, info: Info, user_id: strawberry.ID) -> User:
        return User.of(await users.follow(info.context, _target(user_id)), info.context)

    @strawberry.mutation
    async def unfollow(self, info: Info, user_id: strawberry.ID) -> User:
        return User.of(await users.unfollow(info.context, _target(user_id)), info.context)

    @strawberry.mutation(description="Block: removes follows both ways and hides each from the other.")
    async def block(self, info: Info, user_id: strawberry.ID) -> User:
        return User.of(await users.block(info.context, _target(user_id)), info.context)

    @strawberry.mutation
    async def unblock(self, info: Info, user_id: strawberry.ID) -> User:
        return User.of(await users.unblock(info.context, _target(user_id)), info.context)

    @strawberry.mutation(description="Mute: hides the user's posts from your home feed.")
    async def mute(self, info: Info, user_id: strawberry.ID) -> User:
        return User.of(await users.mute(info.context, _target(user_id)), info.context)

    @strawberry.mutation
    async def unmute(self, info: Info, user_id: strawberry.ID) -> User:
        return User.of(await users.unmute(info.context, _target(user_id)), info.context)
