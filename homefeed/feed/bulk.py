"""A fast pipelined writer for fan-out: one script call per timeline, many timelines per round trip.

redis-py packs and parses each command in Python, which caps a worker at
~75k timeline writes per second. Fan-out sends the same command shape to
thousands of keys, so this writer builds the RESP bytes from a precomputed
prefix and suffix per post, writes a whole batch at once, and lets hiredis
count the replies. Every command still touches a single key (one user, one
hash slot), so batches can be grouped by node on a Redis Cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ssl
from collections.abc import Sequence
from urllib.parse import unquote, urlsplit

import hiredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

# Merge one member into a list, keep it bounded, and give a list this call creates an expiry.
# KEYS[1] list; ARGV[1] member; ARGV[2] entries to keep (size + sentinel); ARGV[3] ttl.
ADD_SCRIPT = b"""
local added = redis.call('ZADD', KEYS[1], 0, ARGV[1])
if added == 1 and redis.call('ZCARD', KEYS[1]) > tonumber(ARGV[2]) then
  redis.call('ZREMRANGEBYRANK', KEYS[1], 0, -tonumber(ARGV[2]) - 1)
end
redis.call('EXPIRE', KEYS[1], ARGV[3], 'NX')
return added
"""
ADD_SHA = hashlib.sha1(ADD_SCRIPT).hexdigest().encode()

BATCH = 4096


def _bulk(value: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(value), value)


class BulkWriter:
    """One dedicated connection to Redis for fan-out writes."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._lock = asyncio.Lock()

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._reader is not None and self._writer is not None and not self._writer.is_closing():
            return self._reader, self._writer
        parts = urlsplit(self._url)
        if parts.scheme == "unix":
            reader, writer = await asyncio.open_unix_connection(parts.path)
        else:
            context = ssl.create_default_context() if parts.scheme == "rediss" else None
            reader, writer = await asyncio.open_connection(
                parts.hostname or "127.0.0.1", parts.port or 6379, ssl=context
            )
        self._reader, self._writer = reader, writer
        setup: list[Sequence[bytes]] = []
        if parts.password:
            user = unquote(parts.username or "default").encode()
            setup.append([b"AUTH", user, unquote(parts.password).encode()])
        db = parts.path.strip("/") if parts.scheme != "unix" else ""
        if db and db != "0":
            setup.append([b"SELECT", db.encode()])
        setup.append([b"SCRIPT", b"LOAD", ADD_SCRIPT])
        await self._roundtrip(b"".join(_command(c) for c in setup), len(setup))
        return reader, writer

    async def _roundtrip(self, payload: bytes, replies: int) -> int:
        """Send payload, read `replies` replies; raise on the first error reply. Returns the sum of ints."""
        assert self._reader is not None and self._writer is not None
        self._writer.write(payload)
        await self._writer.drain()
        parser = hiredis.Reader(replyError=ResponseError)
        got = 0
        total = 0
        error: ResponseError | None = None
        while got < replies:
            data = await self._reader.read(65536)
            if not data:
                raise RedisConnectionError("Redis closed the fan-out connection")
            parser.feed(data)
            while True:
                reply = parser.gets()
                if reply is False:
                    break
                got += 1
                if isinstance(reply, ResponseError):
                    error = error or reply
                elif isinstance(reply, int):
                    total += reply
        if error is not None:
            raise error
        return total

    async def add(self, keys: Sequence[bytes], member: bytes, keep: int, ttl: int) -> int:
        """Merge member into every list in keys; returns how many lists did not have it yet."""
        return await self._send_each(keys, [b"EVALSHA", ADD_SHA, b"1"], [member, b"%d" % keep, b"%d" % ttl])

    async def remove(self, keys: Sequence[bytes], member: bytes) -> int:
        """Remove member from every list in keys."""
        return await self._send_each(keys, [b"ZREM"], [member])

    async def _send_each(self, keys: Sequence[bytes], head: Sequence[bytes], tail: Sequence[bytes]) -> int:
        """Send `head + [key] + tail` for every key: everything but the key is encoded once."""
        prefix = b"*%d\r\n" % (len(head) + 1 + len(tail)) + b"".join(_bulk(a) for a in head)
        suffix = b"".join(_bulk(a) for a in tail)
        total = 0
        async with self._lock:
            for attempt in (1, 2):
                try:
                    await self._connect()
                    total = 0
                    for start in range(0, len(keys), BATCH):
                        batch = keys[start : start + BATCH]
                        payload = b"".join([prefix + b"$%d\r\n%s\r\n" % (len(k), k) + suffix for k in batch])
                        total += await self._roundtrip(payload, len(batch))
                    return total
                except ResponseError as exc:
                    # The server restarted and lost its script cache: reload once (writes are idempotent).
                    if "NOSCRIPT" not in str(exc) or attempt == 2:
                        raise
                    await self.close()
                except (OSError, RedisConnectionError):
                    await self.close()
                    if attempt == 2:
                        raise
        return total

    async def close(self) -> None:
        """Close the connection (the next call reconnects)."""
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(OSError):
                await self._writer.wait_closed()
        self._reader = self._writer = None


def _command(args: Sequence[bytes]) -> bytes:
    return b"*%d\r\n" % len(args) + b"".join(_bulk(a) for a in args)
