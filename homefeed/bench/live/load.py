"""The live bench's load generator, a process of its own: the subscribers and when updates reach them."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import multiprocessing
import os
import struct
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any
from urllib.parse import SplitResult, urlsplit

import orjson

from homefeed.bench.errors import BenchError
from homefeed.bench.live.api import LEGACY_WS


@dataclass(frozen=True)
class Plan:
    """What the load generator is told: whom to connect as, and how."""

    ws_url: str
    tokens: list[str]
    protocols: list[str]
    connect_concurrency: int
    compression: bool
    query: str  # the subscription document every subscriber sends


@dataclass
class Arrivals:
    """What the load generator hands back: when each subscriber got each ADDED."""

    added: dict[str, list[tuple[int, float]]]  # post global id -> [(subscriber index, unix time)]
    resyncs: int
    failed: list[str]
    closed_early: int


def start_load_generator(plan: Plan, name: str) -> tuple[BaseProcess, Connection]:
    """Start the load generator in a process of its own; return it and the bench's end of its pipe."""
    ctx = multiprocessing.get_context("spawn")
    ours, theirs = ctx.Pipe()
    process = ctx.Process(target=load_generator, args=(theirs, plan), name=name, daemon=True)
    process.start()
    # With the bench's copy of the generator's end closed, a generator that dies reads as
    # end-of-file at once; held open (as it once was), it read as silence until the longest
    # wait ran out, 600 s or more.
    theirs.close()
    return process, ours


async def answer(conn: Connection, within: float) -> Any:
    """The load generator's next message, or a BenchError if it ends or stays silent `within` s."""
    if not await asyncio.to_thread(conn.poll, within):
        raise BenchError(f"the load generator did not answer within {within:.0f} s")
    try:
        return conn.recv()
    except EOFError:
        raise BenchError("the load generator ended without answering (see its output above)") from None


def load_generator(conn: Connection, plan: Plan) -> None:
    """Entry point of the load-generator process: connect, report, record until told to stop."""
    asyncio.run(_LoadGenerator(conn, plan).run())


class _LoadGenerator:
    def __init__(self, conn: Connection, plan: Plan) -> None:
        self.conn = conn
        self.plan = plan
        self.added: dict[str, list[tuple[int, float]]] = {}
        self.waiting: dict[str, tuple[int, asyncio.Event]] = {}
        self.resyncs = 0
        self.failed: list[str] = []
        self.closed_early = 0
        self.stopping = False

    async def run(self) -> None:
        gate = asyncio.Semaphore(self.plan.connect_concurrency)
        ready = [asyncio.get_running_loop().create_future() for _ in self.plan.tokens]
        tasks = [
            asyncio.create_task(self._subscriber(i, gate, ready[i])) for i in range(len(self.plan.tokens))
        ]
        await asyncio.gather(*ready)
        self.conn.send(("connected", len(self.plan.tokens) - len(self.failed), list(self.failed)))
        while True:
            command = await asyncio.to_thread(self.conn.recv)
            if command[0] == "await":
                _, post, expected, timeout = command
                got = await self._await(post, expected, timeout)
                self.conn.send(("seen", post, got))
            elif command[0] == "stop":
                self.stopping = True
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                self.conn.send(
                    ("arrivals", Arrivals(self.added, self.resyncs, self.failed, self.closed_early))
                )
                return

    async def _await(self, post: str, expected: int, within: float) -> int:
        if len(self.added.get(post, ())) < expected:
            event = asyncio.Event()
            self.waiting[post] = (expected, event)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), within)
            self.waiting.pop(post, None)
        return len(self.added.get(post, ()))

    def _record(self, post: str, index: int, at: float) -> None:
        got = self.added.setdefault(post, [])
        got.append((index, at))
        waiting = self.waiting.get(post)
        if waiting is not None and len(got) >= waiting[0]:
            waiting[1].set()

    async def _subscriber(self, index: int, gate: asyncio.Semaphore, ready: asyncio.Future[None]) -> None:
        protocol = self.plan.protocols[index]
        url = urlsplit(self.plan.ws_url)
        loop = asyncio.get_running_loop()
        client = _Client(self, index, url, protocol)
        try:
            async with gate:
                await asyncio.wait_for(
                    loop.create_connection(lambda: client, url.hostname or "127.0.0.1", url.port or 80), 120
                )
                await asyncio.wait_for(asyncio.shield(client.subscribed), 120)
        except Exception as exc:
            self.failed.append(f"subscriber {index} ({protocol}): {type(exc).__name__}: {exc}")
            client.abort()
            ready.set_result(None)
            return
        ready.set_result(None)
        try:
            await client.closed
        except asyncio.CancelledError:
            client.close()


# A client's frames must be masked (RFC 6455, 5.3); a key of zeros leaves the payload as it is,
# which the server cannot tell from any other key and spares the bench an XOR per byte.
_ZERO_MASK = b"\x00\x00\x00\x00"


def _client_frame(opcode: int, payload: bytes) -> bytes:
    n = len(payload)
    if n < 126:
        head = bytes((0x80 | opcode, 0x80 | n))
    elif n < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    return head + _ZERO_MASK + payload


class _Client(asyncio.Protocol):
    """One subscriber: a websocket spoken directly on an asyncio protocol.

    A client library (`websockets`) spent about 100 µs of CPU per received update with its
    reader task, queues and frame objects, so at 10,000 subscribers the load generator, not
    the server, set the lags (bench live said so). This parses the server's frames in
    `data_received` and timestamps an update when its bytes are read."""

    def __init__(self, gen: _LoadGenerator, index: int, url: SplitResult, protocol: str) -> None:
        self.gen = gen
        self.index = index
        self.url = url
        self.protocol = protocol
        self.legacy = protocol == LEGACY_WS
        loop = asyncio.get_running_loop()
        self.subscribed: asyncio.Future[None] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.upgraded = False
        self.acknowledged = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        key = base64.b64encode(os.urandom(16)).decode()
        path = self.url.path or "/"
        # Offered as browsers do; the server declines it (homefeed/websocket.py), and a server
        # that accepted would be refused below.
        offer = "Sec-WebSocket-Extensions: permessage-deflate\r\n" if self.gen.plan.compression else ""
        transport.write(
            (
                f"GET {path} HTTP/1.1\r\nHost: {self.url.netloc}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                f"Sec-WebSocket-Protocol: {self.protocol}\r\n{offer}\r\n"
            ).encode()
        )

    def send_json(self, message: dict[str, Any]) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(_client_frame(0x1, orjson.dumps(message)))

    def data_received(self, data: bytes) -> None:
        at = time.time()
        buffer = self.buffer
        buffer += data
        if not self.upgraded:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(buffer[:end]).decode("latin-1")
            del buffer[: end + 4]
            if not head.startswith("HTTP/1.1 101"):
                return self._fail(f"handshake refused: {head.splitlines()[0]!r}")
            if "sec-websocket-extensions" in head.lower():
                return self._fail("the server negotiated an extension; this client does not inflate")
            self.upgraded = True
            init = {"authorization": f"Bearer {self.gen.plan.tokens[self.index]}"}
            self.send_json({"type": "connection_init", "payload": init})
        while len(buffer) >= 2:
            first, second = buffer[0], buffer[1]
            length, start = second & 0x7F, 2
            if length == 126:
                if len(buffer) < 4:
                    return
                length, start = int.from_bytes(buffer[2:4], "big"), 4
            elif length == 127:
                if len(buffer) < 10:
                    return
                length, start = int.from_bytes(buffer[2:10], "big"), 10
            if second & 0x80 or not first & 0x80:
                return self._fail("a masked or fragmented frame from the server")
            if len(buffer) < start + length:
                return
            payload = bytes(buffer[start : start + length])
            del buffer[: start + length]
            opcode = first & 0x0F
            if opcode == 0x1:
                self._message(payload, at)
            elif opcode == 0x9:  # ping: the server closes connections that do not answer
                if self.transport is not None and not self.transport.is_closing():
                    self.transport.write(_client_frame(0xA, payload))
            elif opcode == 0x8:
                if not self.gen.stopping:
                    self.gen.failed.append(f"subscriber {self.index} ({self.protocol}): closed {payload!r}")
                self.close()
                return

    def _message(self, raw: bytes, at: float) -> None:
        message = orjson.loads(raw)
        kind = message.get("type")
        if not self.acknowledged:
            if kind == "connection_ack":
                self.acknowledged = True
                start = {
                    "id": "1",
                    "type": "start" if self.legacy else "subscribe",
                    "payload": {"query": self.gen.plan.query},
                }
                self.send_json(start)
                if not self.subscribed.done():
                    self.subscribed.set_result(None)
            elif kind == "ping":
                self.send_json({"type": "pong"})
            elif kind not in ("ka", "pong"):
                self._fail(f"unexpected {message!r} before connection_ack")
            return
        if kind in ("next", "data"):
            update = (message.get("payload") or {}).get("data", {}).get("homeFeedUpdates") or {}
            if update.get("kind") == "ADDED":
                self.gen._record(update["postId"], self.index, at)
            elif update.get("kind") == "RESYNC":
                self.gen.resyncs += 1
        elif kind == "ping":
            self.send_json({"type": "pong"})
        elif kind in ("error", "complete"):
            self.gen.failed.append(f"subscriber {self.index} ({self.protocol}): {message!r}")
            self.close()

    def _fail(self, reason: str) -> None:
        if not self.subscribed.done():
            self.subscribed.set_exception(RuntimeError(reason))
        elif not self.gen.stopping:
            self.gen.failed.append(f"subscriber {self.index} ({self.protocol}): {reason}")
        self.abort()

    def close(self) -> None:
        """Close the websocket politely (a close frame, then the connection)."""
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(_client_frame(0x8, struct.pack("!H", 1000)))
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.subscribed.done():
            self.subscribed.set_exception(ConnectionError(f"connection lost before subscribing: {exc}"))
        elif not self.gen.stopping:
            self.gen.closed_early += 1
            if exc is not None:
                self.gen.failed.append(
                    f"subscriber {self.index} ({self.protocol}) lost: {type(exc).__name__}: {exc}"
                )
        if not self.closed.done():
            self.closed.set_result(None)
