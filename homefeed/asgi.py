"""Requests read straight from ASGI, ahead of Starlette: the persisted-query fast path's front.

`FastGraphQL` is the middleware that hands a persisted query to the GraphQL app's fast path
before Starlette's routing and middleware; `Head`, `read_body` and `replaying` read a request's
few headers and its body from the ASGI scope and messages, with no request object, and give
back what was read to whatever answers instead. `declared_length` is the one Content-Length
rule, for this front and for the body limit behind it (app.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Answers a request (None), or gives it back: the receive callable replaying what was read.
Answer = Callable[[Scope, Receive, Send], Awaitable[Receive | None]]


class FastGraphQL:
    """The fast path of persisted queries, before Starlette's routing and middleware.

    A persisted query to the GraphQL path goes from here to `answer` (the GraphQL app's fast
    path): Starlette's exception middleware, the body limit, the router, the route and the
    request object add nothing to an answer the fast path gives, only their frames and
    allocations to every request. Whatever the fast path does not answer goes on down the usual
    stack (with what was read of it replayed), which answers it as it always does. It sits
    inside Starlette's server-error middleware, so an exception here is answered and logged as
    anywhere else.

    The body limit's rule stays whole: only a body declaring one length within the limit is
    read here; any other goes down to the body limit unread.
    """

    def __init__(self, app: ASGIApp, answer: Answer, path: str, limit: int) -> None:
        self.app = app
        self.answer = answer
        self.path = path
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and self._is_ours(scope)
            and scope["method"] in ("GET", "POST")
            and (scope["method"] == "GET" or self._within_limit(scope))
        ):
            replay = await self.answer(scope, receive, send)
            if replay is None:
                return
            receive = replay
        await self.app(scope, receive, send)

    def _is_ours(self, scope: Scope) -> bool:
        # Whether the router would route it to the GraphQL path: it matches the part of the path
        # after the root path (a mount, or uvicorn's --root-path) when the path starts with it,
        # and the whole path otherwise, as Starlette's router reads it.
        path: str = scope["path"]
        root: str = scope.get("root_path", "")
        if root and path.startswith(root):
            rest = path[len(root) :]
            if not rest:
                return False
            if rest[0] == "/":
                return rest == self.path
        return path == self.path

    def _within_limit(self, scope: Scope) -> bool:
        # No length, or a bad one: the body limit answers it, or counts the body as it comes.
        try:
            declared = declared_length(scope["headers"])
        except BadContentLength:
            return False
        return declared is not None and declared <= self.limit


class BadContentLength(ValueError):
    """A request's Content-Length is not one number."""


def declared_length(headers: Iterable[tuple[bytes, bytes]]) -> int | None:
    """The body length a request's Content-Length declares; None without one.

    BadContentLength if it is not a number, or several values disagree (several headers, or
    a list in one): which one frames the body is then a guess, and a proxy in front may have
    guessed otherwise (request smuggling), so the request is refused rather than read
    (RFC 9110, 8.6; RFC 9112, 6.3). The same value repeated is that value."""
    declared: bytes | None = None
    for name, value in headers:
        if name == b"content-length":
            # Nearly always one header of plain digits: checked first, as the fast path reads
            # every request's length.
            parts = (value,) if value.isdigit() else [p.strip() for p in value.split(b",")]
            for part in parts:
                if not part.isdigit() or (declared is not None and part != declared):
                    raise BadContentLength(value.decode("latin-1"))
                declared = part
    if declared is None:
        return None
    try:
        return int(declared)
    except ValueError:  # more digits than Python converts (4300): no server frames that
        raise BadContentLength(declared.decode("latin-1")) from None


class Head:
    """The request headers the fast path reads, found in one pass over the ASGI list (names
    come lowercased). A repeated header gives its first value, as Starlette's `headers.get`;
    X-Forwarded-For keeps every value, in order."""

    __slots__ = ("accept", "authorization", "content_type", "forwarded_for")

    def __init__(self, raw: list[tuple[bytes, bytes]]) -> None:
        self.accept: str | None = None
        self.authorization: str | None = None
        self.content_type: str | None = None
        self.forwarded_for: list[str] = []
        for name, value in raw:
            if name == b"authorization":
                if self.authorization is None:
                    self.authorization = value.decode("latin-1")
            elif name == b"content-type":
                if self.content_type is None:
                    self.content_type = value.decode("latin-1")
            elif name == b"accept":
                if self.accept is None:
                    self.accept = value.decode("latin-1")
            elif name == b"x-forwarded-for":
                self.forwarded_for.append(value.decode("latin-1"))


async def read_body(receive: Receive) -> tuple[list[Message], bytes | None]:
    """The request's messages as received, and its body (None if the client disconnected)."""
    messages: list[Message] = []
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            return messages, None
        if not message.get("more_body", False):
            break
    if len(messages) == 1:
        return messages, messages[0].get("body", b"")
    return messages, b"".join(m.get("body", b"") for m in messages)


def replaying(messages: list[Message], receive: Receive) -> Receive:
    """A receive callable giving the messages already read, then whatever comes next."""
    pending = list(messages)

    async def replay() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replay
