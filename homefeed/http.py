"""The HTTP/1.1 transport the API is served with: uvicorn's httptools protocol, one write per answer.

uvicorn writes a response's head (status line and headers) to the socket when the app sends
`http.response.start`, and its body when the app sends `http.response.body`: two writes, two
TCP segments with TCP_NODELAY, for every answer whose body is sent whole. Profiled under `bench
read` (the persisted feed query, one API process), that head write was the largest single frame
of the API's own time. Here the head of a response that declares its length waits for the
body's first write and goes out with it, in one write.

Nothing else changes: uvicorn still builds and checks the head, keeps the connection's state
and counts the body against the declared length. A head is held only while the app is between
its two messages, and only when a write of the body is sure to follow: a content-length was
declared (so the body is not chunked, and uvicorn writes even an empty body) and the method is
not HEAD (whose body uvicorn never writes). A streamed response (no length) is written as it
comes, head first, as before.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle


class OneWriteHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, writing a whole answer's head and body at once."""

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        cycle = self.cycle
        # The cycle just made for this request (an upgrade makes none), whose task has not run yet:
        # its send is looked up when it starts.
        if cycle is not None and cycle.scope is self.scope and not cycle.response_started:
            cycle.send = OneWriteSend(cycle)  # type: ignore[method-assign]


class OneWriteSend:
    """A cycle's ASGI send, holding a response's head until its body is written."""

    __slots__ = ("cycle", "send")

    def __init__(self, cycle: RequestResponseCycle) -> None:
        self.cycle = cycle
        self.send = RequestResponseCycle.send.__get__(cycle)

    async def __call__(self, message: Any) -> None:
        cycle = self.cycle
        if (
            message["type"] == "http.response.start"
            and not cycle.response_started
            and cycle.scope["method"] != "HEAD"
            and _declares_length(message.get("headers", ()))
        ):
            transport = cycle.transport
            holding = _HeadHolding(transport)
            cycle.transport = holding  # type: ignore[assignment]
            try:
                await self.send(message)
            except BaseException:
                cycle.transport = transport
                raise
            if holding.head is None:  # nothing was written (the client went away)
                cycle.transport = transport
            return
        await self.send(message)
        held: Any = cycle.transport
        if type(held) is _HeadHolding:
            # The body's first write took the head with it: the real transport from now on.
            cycle.transport = held.transport


class _HeadHolding:
    """Stands for a connection's transport between a response's start and its body: the first
    write (the head) is kept, and goes out with the next one."""

    __slots__ = ("head", "transport")

    def __init__(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self.head: bytes | None = None

    def write(self, data: bytes) -> None:
        head = self.head
        if head is None:
            self.head = data
            return
        self.head = b""
        self.transport.write(head + data)

    def close(self) -> None:
        # Whatever is held goes out first, as it would have.
        if self.head:
            self.transport.write(self.head)
            self.head = b""
        self.transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transport, name)


def _declares_length(headers: Any) -> bool:
    return any(name.lower() == b"content-length" for name, _ in headers)
