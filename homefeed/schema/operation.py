"""Which operation of a document a request runs, by the GraphQL spec's rule (GetOperation)."""

from __future__ import annotations

from graphql import DocumentNode, GraphQLError, OperationDefinitionNode
from strawberry.types import ExecutionContext


def unnamed_choice_error(document: DocumentNode, operation_name: str | None) -> GraphQLError | None:
    """The request error for a document of several operations sent without `operationName`.

    The spec refuses such a request; Strawberry and graphql-core 3.3 would run the first
    operation instead, so a client's mistake would silently run something it did not choose.
    """
    if operation_name is not None:
        return None
    operations = sum(isinstance(d, OperationDefinitionNode) for d in document.definitions)
    if operations <= 1:
        return None
    return GraphQLError(
        f"the document holds {operations} operations: say which to run with `operationName`",
        extensions={"code": "BAD_USER_INPUT"},
    )


def provided_operation_name(ctx: ExecutionContext) -> str | None:
    """The `operationName` the request sent: Strawberry's `operation_name` answers the first
    operation's name when none was sent, which would hide the missing choice."""
    # Private in Strawberry (set from its InitVar); read in this one place.
    return getattr(ctx, "_provided_operation_name", ctx.operation_name)
