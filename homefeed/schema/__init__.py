"""The GraphQL schema: the contract of docs/api.md, with query limits and error codes."""

from __future__ import annotations

from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.extensions import (
    AddValidationRules,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    ValidationCache,
)
from strawberry.types import ExecutionContext

from homefeed.schema.cost import CostLimit
from homefeed.schema.errors import ErrorCodes, log_errors
from homefeed.schema.execution import PlannedExecutionContext
from homefeed.schema.metrics import OperationMetrics
from homefeed.schema.posts import Post
from homefeed.schema.ratelimit import RequestLimit
from homefeed.schema.root import Mutation, Query, Subscription
from homefeed.schema.users import User

MAX_DEPTH = 10
MAX_TOKENS = 2000
MAX_ALIASES = 30


# The query limits' validation rules, built once. Each limiter builds a new rule class when it
# is constructed, and the validation cache is keyed by the rules: with a fresh limiter per
# request no document was ever found in the cache, and every request re-validated its query,
# a large share of a home-feed request's CPU.
LIMIT_RULES = [
    *QueryDepthLimiter(max_depth=MAX_DEPTH).validation_rules,
    *MaxAliasesLimiter(max_alias_count=MAX_ALIASES).validation_rules,
]


class QueryLimits(AddValidationRules):
    """Depth and alias limits, with the same rule classes on every request."""

    def __init__(self) -> None:
        super().__init__(LIMIT_RULES)


class HomefeedSchema(strawberry.Schema):
    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        log_errors(errors)


def build_schema(**kwargs: Any) -> strawberry.Schema:
    """The schema with its protective extensions; planned execution unless `execution_context_class`
    says otherwise (tests compare the plan with graphql-core's own executor on this schema)."""
    kwargs.setdefault("execution_context_class", PlannedExecutionContext)
    return HomefeedSchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        types=[User, Post],
        # Factories: a fresh extension per request; the parser and validation caches are shared.
        extensions=[
            OperationMetrics,
            ErrorCodes,
            lambda: ParserCache(maxsize=1024),
            lambda: ValidationCache(maxsize=1024),
            QueryLimits,
            lambda: MaxTokensLimiter(max_token_count=MAX_TOKENS),
            # After the validation cache: it needs the document's validation errors, if any.
            CostLimit,
            # Last: it counts the request, and its refusal replaces any other error.
            RequestLimit,
        ],
        **kwargs,
    )


schema = build_schema()
