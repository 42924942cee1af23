"""Pipelined GETs for the read path: one connection per process, replies parsed by hiredis.

A home-feed read asks Redis for one string (the timeline). Through redis-py's asyncio client
that GET cost more client CPU (connection pool checkout, command packing, a timeout
context, the retry wrapper, the stream reader): more than Redis and the numpy decoding
together. Here a GET is a preformatted command written to a shared connection and a future
resolved by `data_received`: concurrent reads pipeline on the one connection for free.

Errors are redis-py's (ConnectionError, TimeoutError, ResponseError), so callers handle them as
before: the feed falls back to PostgreSQL. A connection that fails or stops answering within
`timeout` fails every read waiting on it; the next read reconnects.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import Sequence
from typing import cast
from urllib.parse import unquote, urlsplit

import hiredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError


def bulk(value: bytes) -> bytes:
    """A RESP bulk string."""
    return b"$%d\r\n%s\r\n" % (len(value), value)


def command(args: Sequence[bytes]) -> bytes:
    """A RESP command."""
    return b"*%d\r\n" % len(args) + b"".join(bulk(a) for a in args)


def setup_commands(url: str) -> list[bytes]:
    """The AUTH and SELECT a new connection to `url` must send first."""
    parts = urlsplit(url)
    setup = []
    if parts.password:
        user = unquote(parts.username or "default").encode()
        setup.append(command([b"AUTH", user, unquote(parts.password).encode()]))
    db = parts.path.strip("/") if parts.scheme != "unix" else ""
    if db and db != "0":
        setup.append(command([b"SELECT", db.encode()]))
    return setup


async def open_transport(
    url: str, protocol: asyncio.Protocol
) -> tuple[asyncio.BaseTransport, asyncio.BaseProtocol]:
    """Connect `protocol` to the Redis at `url` (redis://, rediss:// or unix://)."""
    loop = asyncio.get_running_loop()
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return await loop.create_unix_connection(lambda: protocol, parts.path)
    context = ssl.create_default_context() if parts.scheme == "rediss" else None
    return await loop.create_connection(
        lambda: protocol, parts.hostname or "127.0.0.1", parts.port or 6379, ssl=context
    )


def get_commands(keys: Sequence[str], *, ttl_of_last: bool) -> list[bytes]:
    """GET of each key (then TTL of the last one), as written to the connection."""
    encoded = [k.encode() for k in keys]
    payloads = [b"*2\r\n$3\r\nGET\r\n$%d\r\n%b\r\n" % (len(k), k) for k in encoded]
    if ttl_of_last:
        payloads.append(b"*2\r\n$3\r\nTTL\r\n$%d\r\n%b\r\n" % (len(encoded[-1]), encoded[-1]))
    return payloads


def values_and_ttl(replies: Sequence[object], ttl_of_last: bool) -> tuple[list[bytes | None], int]:
    """`get_commands`' replies as values and a TTL (-1 when not asked); an error reply is raised."""
    for reply in replies:
        if isinstance(reply, ResponseError):
            raise reply
    ttl = -1
    if ttl_of_last:
        *replies, last = replies
        assert isinstance(last, int)
        ttl = last
    values = [r for r in replies if r is None or isinstance(r, bytes)]
    assert len(values) == len(replies)
    return values, ttl


class _Connection(asyncio.Protocol):
    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.transport: asyncio.Transport | None = None
        self.parser = hiredis.Reader(replyError=ResponseError)
        # Futures of sent commands, oldest first, with when each was sent.
        self.waiting: deque[tuple[asyncio.Future[object], float]] = deque()
        self.lost: Exception | None = None
        self._watchdog: asyncio.TimerHandle | None = None
        self._outgoing: list[bytes] = []  # commands not yet written

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport (uvloop's does not subclass asyncio.Transport).
        self.transport = cast(asyncio.Transport, transport)

    def send(self, payload: bytes) -> asyncio.Future[object]:
        assert self.transport is not None
        loop = asyncio.get_running_loop()
        future: asyncio.Future[object] = loop.create_future()
        if self.lost is not None:  # nothing would ever answer it
            future.set_exception(self.lost)
            return future
        now = loop.time()
        self.waiting.append((future, now))
        # Commands sent in one turn of the loop go out in one write: one system call here, and
        # one read and one reply for Redis, for all the requests a burst of connections started.
        if not self._outgoing:
            loop.call_soon(self._flush)
        self._outgoing.append(payload)
        if self._watchdog is None:
            self._watchdog = loop.call_at(now + self.timeout, self._check)
        return future

    def _flush(self) -> None:
        outgoing, self._outgoing = self._outgoing, []
        if self.lost is None and self.transport is not None:
            self.transport.write(b"".join(outgoing))

    def data_received(self, data: bytes) -> None:
        self.parser.feed(data)
        while (reply := self.parser.gets()) is not False:
            future, _ = self.waiting.popleft()
            if future.done():  # its reader was cancelled
                continue
            if isinstance(reply, ResponseError):
                future.set_exception(reply)
            else:
                future.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = RedisConnectionError(f"Redis connection lost: {exc or 'closed by the server'}")
        self._fail(self.lost)

    def _check(self) -> None:
        """Fail the connection if its oldest unanswered command is older than the timeout."""
        self._watchdog = None
        if not self.waiting or self.lost is not None:
            return
        loop = asyncio.get_running_loop()
        oldest = self.waiting[0][1]
        if loop.time() - oldest >= self.timeout:
            self.lost = RedisTimeoutError(f"Redis did not answer within {self.timeout} s")
            self._fail(self.lost)
            if self.transport is not None:
                self.transport.abort()
            return
        self._watchdog = loop.call_at(oldest + self.timeout, self._check)

    def _fail(self, error: Exception) -> None:
        while self.waiting:
            future, _ = self.waiting.popleft()
            if not future.done():
                future.set_exception(error)
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None


class RedisReads:
    """GETs on one pipelined connection, opened on first use and reopened after a failure."""

    def __init__(self, url: str, timeout: float = 5.0) -> None:
        self._url = url
        self._timeout = timeout
        self._connection: _Connection | None = None
        self._connecting: asyncio.Task[_Connection] | None = None

    async def get(self, key: str) -> bytes | None:
        """The value of a string key (None when missing)."""
        raw = key.encode()
        connection = await self._connection_for_use()
        reply = await connection.send(b"*2\r\n$3\r\nGET\r\n$%d\r\n%b\r\n" % (len(raw), raw))
        assert reply is None or isinstance(reply, bytes)
        return reply

    async def get_with_ttl(self, key: str) -> tuple[bytes | None, int]:
        """The value of a string key and its seconds to expiry (-1: none, -2: missing), in one write."""
        encoded = key.encode()
        raw = b"$%d\r\n%b\r\n" % (len(encoded), encoded)
        connection = await self._connection_for_use()
        value, ttl = (
            connection.send(b"*2\r\n$3\r\nGET\r\n" + raw),
            connection.send(b"*2\r\n$3\r\nTTL\r\n" + raw),
        )
        try:
            got, seconds = await value, await ttl
        except BaseException:
            # The GET failed (or its reader went away): the TTL's outcome is never read, so
            # retrieve or cancel it, or asyncio logs "exception was never retrieved" for it.
            if ttl.done():
                if not ttl.cancelled():
                    ttl.exception()
            else:
                ttl.cancel()  # the connection skips a cancelled future's reply
            raise
        assert (got is None or isinstance(got, bytes)) and isinstance(seconds, int)
        return got, seconds

    async def get_all(
        self, keys: Sequence[str], *, ttl_of_last: bool = False
    ) -> tuple[list[bytes | None], int]:
        """Several string keys' values, and the last one's seconds to expiry if asked (else -1),
        in one write."""
        return values_and_ttl(await self.send_many(get_commands(keys, ttl_of_last=ttl_of_last)), ttl_of_last)

    async def call(self, *args: bytes) -> object:
        """Any command, pipelined with the reads (the author's own append after a post)."""
        connection = await self._connection_for_use()
        return await connection.send(command(args))

    async def send_many(self, payloads: Sequence[bytes]) -> list[object]:
        """Commands written together, in order: their replies, error replies returned, not raised."""
        connection = await self._connection_for_use()
        futures = [connection.send(p) for p in payloads]
        replies: list[object] = []
        try:
            for future in futures:
                try:
                    replies.append(await future)
                except ResponseError as exc:
                    replies.append(exc)
        except BaseException:
            # The connection failed (or the caller went away): the later replies are never
            # read, so retrieve or cancel them, or asyncio logs "exception was never retrieved".
            for future in futures:
                if not future.done():
                    future.cancel()  # the connection skips a cancelled future's reply
                elif not future.cancelled():
                    future.exception()
            raise
        return replies

    async def _connection_for_use(self) -> _Connection:
        connection = self._connection
        if connection is None or connection.lost is not None:
            connection = await self._connect()
        return connection

    async def _connect(self) -> _Connection:
        # Single-flight: reads arriving while the connection opens wait for the same one.
        if self._connecting is None:
            self._connecting = asyncio.ensure_future(self._open())
        connecting = self._connecting
        try:
            return await asyncio.shield(connecting)
        finally:
            if connecting.done():
                self._connecting = None

    async def _open(self) -> _Connection:
        connection = _Connection(self._timeout)
        try:
            async with asyncio.timeout(self._timeout):  # one deadline for connecting and set-up
                await open_transport(self._url, connection)
                for setup in setup_commands(self._url):
                    await connection.send(setup)
        except (OSError, TimeoutError) as exc:
            if connection.transport is not None:
                connection.transport.abort()
            raise RedisConnectionError(f"cannot connect to Redis: {exc}") from exc
        self._connection = connection
        return connection

    def close(self) -> None:
        """Close the connection (reads in flight fail; the next read reconnects)."""
        connection, self._connection = self._connection, None
        if connection is not None and connection.transport is not None:
            connection.transport.close()
