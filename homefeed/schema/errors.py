"""How errors reach clients: every error gets `extensions.code`; internals never leak.

Engine errors carry their own code. Errors raised before execution (syntax,
validation, limits, variable coercion) are the client's: BAD_USER_INPUT.
Anything else is a bug or an outage: logged in full, answered as INTERNAL.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from graphql import GraphQLError
from strawberry.extensions import SchemaExtension

from homefeed.feed.errors import FeedError

log = logging.getLogger("homefeed.errors")

INTERNAL_MESSAGE = "Internal server error"


def is_internal(error: GraphQLError) -> bool:
    """Whether an error is ours (unexpected) rather than the client's."""
    original = error.original_error
    return original is not None and not isinstance(original, FeedError | GraphQLError)


def with_code(error: GraphQLError) -> GraphQLError:
    """The error as the client should see it."""
    original = error.original_error
    if isinstance(original, FeedError):
        return _copy(error, error.message, original.code)
    if is_internal(error):
        return _copy(error, INTERNAL_MESSAGE, "INTERNAL")
    code = (error.extensions or {}).get("code") or "BAD_USER_INPUT"
    return _copy(error, error.message, str(code))


def _copy(error: GraphQLError, message: str, code: str) -> GraphQLError:
    return GraphQLError(
        message,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        original_error=None,
        extensions={**(error.extensions or {}), "code": code},
    )


def log_errors(errors: list[GraphQLError]) -> None:
    """Log internal errors with their traceback; client errors are not worth a log line."""
    for error in errors:
        if is_internal(error):
            log.error("internal error at %s", error.path, exc_info=error.original_error)


class ErrorCodes(SchemaExtension):
    """Rewrites every error in a result to carry its code, masking internal ones."""

    def on_operation(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        errors = getattr(result, "errors", None)
        if errors:
            result.errors = [with_code(e) for e in errors]  # type: ignore[union-attr]
