"""A fast pipelined writer for fan-out: one APPEND per timeline, many timelines per round trip.

Two costs cap a fan-out worker, and this module removes both:
- Redis side: inserting into a compact sorted set scans it, and a Lua script has a
  fixed cost per call. Timelines are strings of fixed-width ids (encoding.py), so a
  write is a native `APPEND` (O(1)); the reply, the new length, says when a list was
  just created (give it an expiry) or outgrew its bound (the caller rewrites it, once
  per many appends).
- Client side: redis-py packs and parses each command in Python, which caps the
  write rate well below what Redis takes. Fan-out sends one command shape to
  thousands of keys, so this writer builds the RESP bytes from a template per post,
  keeps batches in flight while it builds the next, and parses replies with hiredis.
Every command touches a single key (one user, one hash slot), so batches can be
grouped by node on a Redis Cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import NamedTuple, cast
from urllib.parse import urlsplit

import hiredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from homefeed.feed.config import DEFAULTS
from homefeed.feed.timeline.reads import bulk, setup_commands

BATCH = 4096
ASKING = b"*1\r\n$6\r\nASKING\r\n"
# How long a pipeline waits for Redis to make progress: HOMEFEED_REDIS_WRITE_TIMEOUT_MS's default.
REPLY_TIMEOUT = DEFAULTS.redis_write_timeout_ms / 1000


class NoReply(RedisConnectionError):
    """Redis took no step on a pipeline within the writer's timeout (hung, paused, overloaded).

    The connection is dropped (replies may still come on it) and the caller fails: a fan-out
    job is retried later, and a replication barrier's batch is redone. Not retried at once on a
    fresh connection, unlike a closed one: a hung server would cost the wait twice.
    """


class Replies(NamedTuple):
    """A pipeline's replies in order (integers, 0 for others, error replies in place) and its first error."""

    replies: list[int | ResponseError]
    error: ResponseError | None


@dataclass(frozen=True, slots=True)
class Appended:
    written: int
    overgrown: list[bytes]  # keys past their bound: rewrite them to their newest ids


class BulkWriter:
    """One dedicated connection to Redis for fan-out writes.

    timeout bounds how long a pipeline waits for Redis to take its next step (read a batch, send
    replies): a hung server fails the call with NoReply instead of holding it, and the job, forever.
    """

    def __init__(self, url: str, timeout: float = REPLY_TIMEOUT) -> None:
        self._url = url
        self._timeout = timeout
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._lock = asyncio.Lock()

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._reader is not None and self._writer is not None and not self._writer.is_closing():
            return self._reader, self._writer
        parts = urlsplit(self._url)
        try:
            # A host that drops packets would otherwise hold the job for the kernel's connect timeout.
            async with asyncio.timeout(self._timeout):
                if parts.scheme == "unix":
                    reader, writer = await asyncio.open_unix_connection(parts.path)
                else:
                    context = ssl.create_default_context() if parts.scheme == "rediss" else None
                    reader, writer = await asyncio.open_connection(
                        parts.hostname or "127.0.0.1", parts.port or 6379, ssl=context
                    )
        except TimeoutError:
            raise NoReply(f"could not connect to Redis within {self._timeout:g} s") from None
        # Room for a whole batch in the transport, so writing one never waits for Redis to read it.
        writer.transport.set_write_buffer_limits(high=1 << 22)
        self._reader, self._writer = reader, writer
        setup = setup_commands(self._url)
        if setup:
            await self._pipeline([(b"".join(setup), len(setup))])
        return reader, writer

    async def _pipeline(self, batches: Iterable[tuple[bytes, int]], *, keep_errors: bool = False) -> Replies:
        """Send batches of commands back to back, reading replies while Redis works on the next batch.

        At most one batch beyond the one being written is left unanswered, so Redis always has
        work queued while this process builds the next payload and parses the previous replies:
        the two sides run in parallel instead of taking turns. Returns the integer replies in order
        (0 for others) and the first error reply; raises that error once every reply has been read
        (the connection stays usable), or with keep_errors returns error replies in their places.
        """
        assert self._reader is not None and self._writer is not None
        reader, writer = self._reader, self._writer
        parser = hiredis.Reader(replyError=ResponseError)
        feed, gets = parser.feed, parser.gets
        sent = 0
        replies_seen: list[int | ResponseError] = []
        keep = replies_seen.append
        error: ResponseError | None = None
        previous = 0  # replies owed for batches before the one just written
        # One deadline, pushed back at every step Redis takes: a long fan-out may take as long as
        # it needs, but Redis going silent fails it (asyncio.timeout: wait_for can lose a cancel).
        loop = asyncio.get_running_loop()
        timeout = self._timeout
        deadline = asyncio.timeout(timeout)

        async def read_until(count: int) -> None:
            nonlocal error
            # Thousands of replies a batch: the common one (an int) takes a single type check.
            while len(replies_seen) < count:
                data = await reader.read(1 << 17)
                if not data:
                    raise RedisConnectionError("Redis closed the fan-out connection")
                feed(data)
                deadline.reschedule(loop.time() + timeout)
                while (reply := gets()) is not False:
                    if reply.__class__ is not int:
                        if isinstance(reply, ResponseError):
                            error = error or reply
                        elif not isinstance(reply, int):
                            reply = 0
                    keep(reply)

        try:
            async with deadline:
                for payload, replies in batches:
                    writer.write(payload)
                    await read_until(previous)
                    previous = sent = sent + replies
                    await writer.drain()
                    deadline.reschedule(loop.time() + timeout)
                await read_until(sent)
        except TimeoutError:
            raise NoReply(f"Redis took no step for {timeout:g} s ({len(replies_seen)} replies in)") from None
        if error is not None and not keep_errors:
            raise error
        return Replies(replies_seen, error)

    async def append(
        self,
        keys: Sequence[bytes],
        entry: bytes,
        *,
        ttl: int,
        max_bytes: int,
        tags: Sequence[int] | None = None,
    ) -> Appended:
        """Append entry to every list in keys; expire the lists this creates; report the overgrown.

        tags, when given, are the keys' hash tags as ids (`{123}`), in order: a cluster routes
        by them without parsing keys. A single server ignores them.
        """
        lengths = await self._send_each(keys, [b"APPEND"], [entry])
        created, overgrown = appended(keys, lengths, len(entry), max_bytes)
        if created:
            await self._send_each(created, [b"EXPIRE"], [b"%d" % ttl])
        return Appended(written=len(keys), overgrown=overgrown)

    async def commands(self, payload: bytes, replies: int) -> list[int | ResponseError]:
        """Raw RESP commands on this connection; their integer replies (0 for others), errors in place."""
        async with self._lock:
            try:
                await self._connect()
                return (await self._pipeline([(payload, replies)], keep_errors=True)).replies
            except NoReply:
                self._discard()
                raise
            except (OSError, RedisConnectionError):
                await self.close()
                raise
            except BaseException:
                self._discard()
                raise

    async def _send_each(
        self, keys: Sequence[bytes], head: Sequence[bytes], tail: Sequence[bytes]
    ) -> list[int]:
        """Send `head + [key] + tail` for every key: everything but the key is encoded once."""
        sent = await self.send_each(keys, head, tail)
        if sent.error is not None:
            raise sent.error
        return cast(list[int], sent.replies)

    async def send_each(
        self, keys: Sequence[bytes], head: Sequence[bytes], tail: Sequence[bytes], *, asking: bool = False
    ) -> Replies:
        """`_send_each`, but error replies are returned in their places (a cluster's MOVED and ASK).

        With asking, each command is preceded by ASKING (a slot being migrated to this node).
        """
        prefix = b"*%d\r\n" % (len(head) + 1 + len(tail)) + b"".join(bulk(a) for a in head)
        suffix = b"".join(bulk(a) for a in tail)
        per_key = 1
        if asking:
            prefix, per_key = ASKING + prefix, 2
        async with self._lock:
            for attempt in (1, 2):
                try:
                    await self._connect()
                    sent = await self._pipeline(_batches(keys, prefix, suffix, per_key), keep_errors=True)
                    if per_key == 1:
                        return sent
                    return Replies(sent.replies[per_key - 1 :: per_key], sent.error)
                except NoReply:
                    self._discard()
                    raise
                except (OSError, RedisConnectionError):
                    # Reconnect once: a resent APPEND is harmless (readers deduplicate).
                    await self.close()
                    if attempt == 2:
                        raise
                except BaseException:
                    self._discard()
                    raise
        raise AssertionError("unreachable: the second attempt returns or raises")

    def _discard(self) -> None:
        """Drop a connection whose pipeline was interrupted (cancelled: a job's lease passed on).

        Replies to what it sent may still come, and its parser held part of one: the next
        pipeline on it would take them for its own, and could wait forever for the rest. Aborted,
        not closed: a close waits to send what is buffered, which a hung server never reads.
        """
        if self._writer is not None:
            self._writer.transport.abort()
        self._reader = self._writer = None

    async def close(self) -> None:
        """Close the connection (the next call reconnects)."""
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(OSError):
                await self._writer.wait_closed()
        self._reader = self._writer = None


def _batches(
    keys: Sequence[bytes], prefix: bytes, suffix: bytes, per_key: int = 1
) -> Iterator[tuple[bytes, int]]:
    """`prefix + key + suffix` for every key, BATCH commands a payload, built lazily (while Redis works)."""
    # One %-format per key: the constant parts are escaped into the template once.
    template = prefix.replace(b"%", b"%%") + b"$%d\r\n%b\r\n" + suffix.replace(b"%", b"%%")
    for start in range(0, len(keys), BATCH):
        batch = keys[start : start + BATCH]
        yield b"".join([template % (len(k), k) for k in batch]), len(batch) * per_key


def appended(
    keys: Sequence[bytes], lengths: Sequence[int], entry_size: int, max_bytes: int
) -> tuple[list[bytes], list[bytes]]:
    """From APPEND's replies (the new lengths): the keys it created, and those past their bound.

    A length of exactly one entry means the APPEND created the key: it has no expiry yet.
    Both are rare, so min and max (in C) decide whether the keys need a look at all.
    """
    if not lengths:
        return [], []
    created: list[bytes] = []
    overgrown: list[bytes] = []
    if min(lengths) == entry_size:
        created = [k for k, n in zip(keys, lengths, strict=True) if n == entry_size]
    if max(lengths) > max_bytes:
        overgrown = [k for k, n in zip(keys, lengths, strict=True) if n > max_bytes]
    return created, overgrown
