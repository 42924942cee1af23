"""How errors reach clients: every error gets `extensions.code`; internals never leak.

Engine errors carry their own code. Errors raised before execution (syntax,
validation, limits, variable coercion) are the client's: BAD_USER_INPUT.
Anything else is a bug or an outage: logged in full, answered as INTERNAL.
Websockets bypass the HTTP view's result processing, so `CodedSchema` gives the
websocket handlers results already in this language, and `code_error_frame`
codes the errors Strawberry's handlers build themselves.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Iterable, Iterator
from typing import Any, Protocol, TypeVar

from graphql import GraphQLError
from strawberry.extensions import SchemaExtension
from strawberry.schema.base import BaseSchema
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.types import ExecutionResult
from strawberry.types.execution import PreExecutionError
from strawberry.types.graphql import OperationType

from homefeed.feed.errors import FeedError, RateLimited

log = logging.getLogger("homefeed.errors")

INTERNAL_MESSAGE = "Internal server error"
# Where a RATE_LIMITED error says how many whole seconds to wait before retrying.
RETRY_AFTER = "retryAfter"
SUBSCRIPTION_OVER_HTTP = (
    "subscriptions are served over websockets only: open /graphql with the "
    "graphql-transport-ws (or legacy graphql-ws) subprotocol"
)
# Strawberry's own text for the per-connection cap, which it sends without a code.
SUBSCRIPTION_LIMIT = "Subscription limit reached"
# Not RATE_LIMITED: waiting does not help (no retryAfter can be given); completing one does.
SUBSCRIPTION_LIMIT_CODE = "BAD_USER_INPUT"

# Strawberry's refusals of an operation it cannot pick or may not run: the request's fault.
_CLIENT_REFUSALS = (FeedError, GraphQLError, InvalidOperationTypeError, CannotGetOperationTypeError)


def is_internal(error: GraphQLError) -> bool:
    """Whether an error is ours (unexpected) rather than the client's."""
    original = error.original_error
    return original is not None and not isinstance(original, _CLIENT_REFUSALS)


def with_code(error: GraphQLError) -> GraphQLError:
    """The error as the client should see it."""
    original = error.original_error
    if isinstance(original, RateLimited):
        return _copy(error, error.message, original.code, {RETRY_AFTER: original.retry_after})
    if isinstance(original, FeedError):
        return _copy(error, error.message, original.code)
    if _is_subscription_refusal(original):
        return _copy(error, SUBSCRIPTION_OVER_HTTP, "BAD_USER_INPUT")
    if is_internal(error):
        return _copy(error, INTERNAL_MESSAGE, "INTERNAL")
    code = (error.extensions or {}).get("code") or "BAD_USER_INPUT"
    return _copy(error, error.message, str(code))


def _copy(
    error: GraphQLError, message: str, code: str, more: dict[str, object] | None = None
) -> GraphQLError:
    return GraphQLError(
        message,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        original_error=None,
        extensions={**(error.extensions or {}), **(more or {}), "code": code},
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


def _is_subscription_refusal(original: Exception | None) -> bool:
    return (
        isinstance(original, InvalidOperationTypeError)
        and original.operation_type is OperationType.SUBSCRIPTION
    )


def subscription_over_http() -> GraphQLError:
    """The answer to a subscription sent over plain HTTP or multipart: a client mistake."""
    return GraphQLError(SUBSCRIPTION_OVER_HTTP, extensions={"code": "BAD_USER_INPUT"})


class _HasErrors(Protocol):
    errors: list[GraphQLError] | None


R = TypeVar("R", bound=_HasErrors)


def coded(result: R) -> R:
    """The result with every error coded and internal ones masked (they were logged already)."""
    if result.errors:
        result.errors = [with_code(e) for e in result.errors]
    return result


async def _coded_stream(source: AsyncGenerator[Any, None]) -> AsyncGenerator[Any, None]:
    first = True
    try:
        async for result in source:
            first = False
            yield coded(result)
    except GraphQLError as exc:
        # Strawberry lets a syntax error re-raised by the parser cache escape the stream; a
        # websocket handler would drop it and complete the operation as if it had succeeded.
        cls = PreExecutionError if first else ExecutionResult
        yield coded(cls(data=None, errors=[exc]))
    finally:
        # The transport closes this stream; the source's cleanup (live hub unsubscribe) must run.
        await source.aclose()


NOT_IN_LIST = "Persisted query not in list: this server runs only its trusted documents"


def not_in_list() -> GraphQLError:
    """The answer to a document outside the trusted-documents manifest (Apollo's router's code)."""
    return GraphQLError(NOT_IN_LIST, extensions={"code": "PERSISTED_QUERY_NOT_IN_LIST"})


async def _refused(error: GraphQLError) -> AsyncGenerator[Any, None]:
    yield PreExecutionError(data=None, errors=[error])


class CodedSchema:
    """The schema as a transport sees it: every streamed result coded and masked.

    Strawberry's websocket handlers (and the multipart transport) send what
    `stream`/`subscribe` yield as they are, and the schema extensions' operation
    hook never sees a subscription's events. Over HTTP (`over_http`), subscriptions
    are refused as the client's mistake instead of running as a query (which
    graphql-core answers with a null-for-non-null internal error).
    """

    def __init__(self, inner: BaseSchema, *, over_http: bool, trusted: frozenset[str] | None = None) -> None:
        self.inner = inner
        self.over_http = over_http
        # Trusted-documents mode: the only document texts that may run. The HTTP view resolves
        # and checks documents before they get here; websockets send text, checked here.
        self.trusted = trusted

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def for_websockets(self) -> CodedSchema:
        """The same schema for a websocket handler, where subscriptions belong."""
        return CodedSchema(self.inner, over_http=False, trusted=self.trusted)

    def _untrusted(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
        if self.trusted is None:
            return False
        query = args[0] if args else kwargs.get("query")
        return query not in self.trusted

    def _allowed(self, kwargs: dict[str, Any]) -> None:
        if self.over_http:
            allowed: Iterable[OperationType] = kwargs.get("allowed_operation_types") or ()
            kwargs["allowed_operation_types"] = {
                t for t in allowed if t is not OperationType.SUBSCRIPTION
            } or {OperationType.QUERY}

    async def execute(self, *args: Any, **kwargs: Any) -> ExecutionResult:
        """`BaseSchema.execute`, refusing subscriptions over HTTP."""
        self._allowed(kwargs)
        try:
            result: ExecutionResult = await self.inner.execute(*args, **kwargs)
        except InvalidOperationTypeError as exc:
            if exc.operation_type is not OperationType.SUBSCRIPTION:
                raise
            return ExecutionResult(data=None, errors=[subscription_over_http()])
        return result

    async def stream(self, *args: Any, **kwargs: Any) -> AsyncGenerator[Any, None]:
        """`BaseSchema.stream` with coded results."""
        self._allowed(kwargs)
        if self._untrusted(args, kwargs):
            return _refused(not_in_list())
        return _coded_stream(await self.inner.stream(*args, **kwargs))

    async def subscribe(self, *args: Any, **kwargs: Any) -> AsyncGenerator[Any, None]:
        """`BaseSchema.subscribe` with coded results."""
        if self._untrusted(args, kwargs):
            return _refused(not_in_list())
        return _coded_stream(await self.inner.subscribe(*args, **kwargs))


def code_error_frame(message: dict[str, Any]) -> dict[str, Any]:
    """A websocket frame with a code on every error Strawberry's handlers built themselves.

    Results from `CodedSchema` are coded already; what is left is the per-connection
    subscription cap, and anything unforeseen, which is masked rather than sent raw.
    """
    if message.get("type") != "error":
        return message
    payload = message.get("payload")
    if isinstance(payload, list):
        return {**message, "payload": [_coded_dict(e) for e in payload]}
    if isinstance(payload, dict):
        return {**message, "payload": _coded_dict(payload)}
    return message


def _coded_dict(error: Any) -> Any:
    if not isinstance(error, dict) or (error.get("extensions") or {}).get("code"):
        return error
    if error.get("message") == SUBSCRIPTION_LIMIT:
        return {**error, "extensions": {"code": SUBSCRIPTION_LIMIT_CODE}}
    log.error("uncoded websocket error masked: %s", error.get("message"))
    return {"message": INTERNAL_MESSAGE, "extensions": {"code": "INTERNAL"}}
