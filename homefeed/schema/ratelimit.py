"""The per-request rate limit: every query and subscription operation is counted once.

Mutations are counted per field instead, by their own buckets (writes per user, logIn and
signUp per client address): counting them here too would cost a second Redis round trip.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from graphql import GraphQLError
from strawberry.extensions import SchemaExtension
from strawberry.types.graphql import OperationType

from homefeed.feed.errors import RateLimited
from homefeed.resolvers.context import Context

COUNTED = frozenset({OperationType.QUERY, OperationType.SUBSCRIPTION})


class RequestLimit(SchemaExtension):
    """Refuses a query or subscription over its budget before it runs (RATE_LIMITED, with
    `retryAfter`). Counted once the document parsed, valid or not: a stream of refused
    documents costs the server work too."""

    async def on_validate(self) -> AsyncIterator[None]:
        ctx = self.execution_context
        context = ctx.context
        if isinstance(context, Context) and ctx.operation_type in COUNTED:
            try:
                await context.count_operation()
            except RateLimited as exc:
                ctx.pre_execution_errors = [GraphQLError(str(exc), original_error=exc)]
        yield
