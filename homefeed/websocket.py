"""The websocket transport the API is served with: uvicorn's sans-I/O protocol, plus a frame writer.

uvicorn's default websocket implementation (websockets' legacy protocol) runs three tasks per
connection (reading, keepalive pings, closing) beside the app's own, with their stream reader
and futures: a large share of an idle subscription's memory (bench live-heap). The sans-I/O
one keeps a connection as one protocol object and timers.

A live update rendered once for many subscribers (schema/broadcast.py) is written here as a
prebuilt text frame, straight to the connection's transport: the ASGI path (a send coroutine
per subscriber through Starlette and uvicorn) was most of what each delivery cost. The writer
is offered to the app as a scope extension, `FRAME_WRITER`, and only where it is exact: no
compression was negotiated (a frame would need deflating), the handshake is done and the
connection neither closing nor over its write buffer's high-water mark (the caller then takes
its ordinary, back-pressured path).
"""

from __future__ import annotations

import asyncio
import struct
from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from homefeed.feed.mailbox import Mailbox
from homefeed.http import OneWriteHttpProtocol

# uvicorn's receive queue is unbounded: the protocol pauses reading while a message waits.
_UNBOUNDED = 2**31
# The scope["extensions"] key under which a connection offers its FrameWriter.
FRAME_WRITER = "homefeed.frame_writer"


class FrameWriter:
    """Writes whole text frames to one websocket connection, bypassing ASGI."""

    __slots__ = ("_protocol",)

    def __init__(self, protocol: FrameTransportProtocol) -> None:
        self._protocol = protocol

    def write_text(self, payload: bytes) -> bool:
        """Send payload (UTF-8 text) as one frame now; False, sending nothing, if the connection
        cannot take it at once (closing, or its client reads too slowly)."""
        p = self._protocol
        if p.close_sent or p.disconnected or not p.handshake_complete or not p.writable.is_set():
            return False
        transport = p.transport
        if transport.is_closing():
            return False
        transport.write(_header(len(payload)) + payload)
        return True


def _header(length: int) -> bytes:
    # FIN + text opcode; a server's frames are not masked (RFC 6455, 5.1).
    if length < 126:
        return bytes((0x81, length))
    if length < 65536:
        return struct.pack("!BBH", 0x81, 126, length)
    return struct.pack("!BBQ", 0x81, 127, length)


class Flag:
    """asyncio.Event's set/clear/is_set/wait, with a waiter made only while someone waits.

    An Event allocates its deque of waiters up front (about 760 bytes, bench live's census):
    uvicorn keeps one per connection for write back-pressure, which nearly never has a waiter."""

    __slots__ = ("_set", "_waiters")

    def __init__(self) -> None:
        self._set = False
        self._waiters: list[asyncio.Future[None]] | None = None

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        self._set = True
        waiters, self._waiters = self._waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(None)

    def clear(self) -> None:
        self._set = False

    async def wait(self) -> bool:
        if self._set:
            return True
        waiter = asyncio.get_running_loop().create_future()
        if self._waiters is None:
            self._waiters = []
        self._waiters.append(waiter)
        try:
            await waiter
        finally:
            if self._waiters is not None and waiter in self._waiters:
                self._waiters.remove(waiter)
        return True


class FrameTransportProtocol(WebSocketsSansIOProtocol):
    """uvicorn's sans-I/O websocket protocol, offering a FrameWriter to the app."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The app's messages from the client: one reader (the app's receive), nearly always
        # empty. asyncio.Queue's deques and Event were 3.7 KB per idle connection.
        self.queue = Mailbox(_UNBOUNDED)  # type: ignore[assignment]
        self.writable = Flag()  # type: ignore[assignment]
        self.writable.set()

    def handle_connect(self, event: Any) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)
        # The app's task starts after this returns, so it sees the extension. With
        # permessage-deflate negotiated, frames must be compressed: no writer then.
        if scope is not None and self.response.status_code == 101 and not self.conn.extensions:
            scope["extensions"][FRAME_WRITER] = FrameWriter(self)

    async def send(self, message: Any) -> None:
        await super().send(message)
        if message["type"] == "websocket.accept" and self.handshake_complete:
            # The handshake's request and response (their headers) are not read again: the
            # scope keeps what the app reads. Kept, they were a few KB per idle connection.
            # websockets' parser, suspended for the connection's life, still holds the request
            # in a local: its headers are emptied in place (2.2 KB, bench live-heap).
            if self.request is not None:
                self.request.headers.clear()
            self.request = self.response = None  # type: ignore[assignment]


def uvicorn_options() -> dict[str, Any]:
    """The transports and options every server of the app uses (`serve`, the benchmarks, the tests)."""
    return {
        "http": OneWriteHttpProtocol,
        "ws": FrameTransportProtocol,
        # Feed updates are small JSON frames that barely compress, and per-socket deflate state
        # costs memory on every idle subscription (bench live).
        "ws_per_message_deflate": False,
        # Shutdown waits for open connections' tasks, but not forever: a subscription task that
        # lost a cancel (redis-py's write under Python 3.11's wait_for, feed/redis_cancels.py)
        # held it indefinitely, and another such loss must not. 30 s, a container's usual grace
        # period; the rest are then cancelled.
        "timeout_graceful_shutdown": 30,
        # The app decides which proxies to believe (HOMEFEED_TRUSTED_PROXIES, feed/addresses.py).
        # uvicorn's own rule, on by default, rewrites the client from X-Forwarded-For for any
        # peer on 127.0.0.1 (or FORWARDED_ALLOW_IPS) before the app sees it: a client on the
        # same host, or whatever a local proxy passes on, would pick its own rate-limit bucket.
        "proxy_headers": False,
    }
