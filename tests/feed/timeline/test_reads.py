"""The read path's pipelined GETs: values, pipelining, failures and reconnection."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from typing import cast
from urllib.parse import urlsplit, urlunsplit

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from homefeed.feed.config import Settings
from homefeed.feed.redis_client import RedisClient
from homefeed.feed.timeline.cluster_reads import ClusterReads
from homefeed.feed.timeline.reads import RedisReads
from homefeed.feed.timeline.slots import SlotMap


@pytest.fixture
async def reads(settings_: Settings, on_cluster: bool) -> AsyncIterator[RedisReads | ClusterReads]:
    """Reads on this test's Redis (routed by slot on the cluster), closed afterwards."""
    url = settings_.redis_url or ""
    made = ClusterReads(SlotMap(url)) if on_cluster else RedisReads(url)
    yield made
    made.close()


async def test_get_returns_values_and_none_for_missing(
    settings_: Settings, redis: RedisClient, reads: RedisReads | ClusterReads
) -> None:
    key = f"{settings_.redis_prefix}:k"
    await redis.set(key, b"\x00\x01binary\r\n")
    assert await reads.get(key) == b"\x00\x01binary\r\n"
    assert await reads.get(f"{settings_.redis_prefix}:missing") is None


@pytest.mark.usefixtures("single_redis")
async def test_concurrent_gets_share_one_connection_in_order(
    settings_: Settings, redis: RedisClient, reads: RedisReads | ClusterReads
) -> None:
    keys = [f"{settings_.redis_prefix}:k{i}" for i in range(300)]
    await redis.mset({k: k.encode() * (i % 7 + 1) for i, k in enumerate(keys)})
    before = len(await redis.client_list())
    got = await asyncio.gather(*(reads.get(k) for k in keys))
    assert got == [k.encode() * (i % 7 + 1) for i, k in enumerate(keys)]
    assert len(await redis.client_list()) == before + 1


class _CountingTransport:
    """A transport that counts its writes."""

    def __init__(self, inner: asyncio.Transport) -> None:
        self.inner = inner
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.writes.append(data)
        self.inner.write(data)

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)


@pytest.mark.usefixtures("single_redis")
async def test_gets_of_one_loop_turn_go_out_in_one_write(
    settings_: Settings, redis: RedisClient, reads: RedisReads | ClusterReads
) -> None:
    keys = [f"{settings_.redis_prefix}:w{i}" for i in range(10)]
    await redis.mset({k: k.encode() for k in keys})
    await reads.get(keys[0])  # connected
    assert isinstance(reads, RedisReads)
    connection = reads._connection
    assert connection is not None and connection.transport is not None
    counting = _CountingTransport(connection.transport)
    connection.transport = cast(asyncio.Transport, counting)
    assert await asyncio.gather(*(reads.get(k) for k in keys)) == [k.encode() for k in keys]
    assert len(counting.writes) == 1
    assert await reads.get(keys[1]) == keys[1].encode()
    assert len(counting.writes) == 2


async def test_error_reply_is_raised_and_connection_stays_usable(
    settings_: Settings, redis: RedisClient, reads: RedisReads | ClusterReads
) -> None:
    key = f"{settings_.redis_prefix}:h"
    await redis.hset(key, "f", "v")
    with pytest.raises(Exception, match="WRONGTYPE"):
        await reads.get(key)
    await redis.set(f"{key}2", b"ok")
    assert await reads.get(f"{key}2") == b"ok"


@pytest.mark.usefixtures("single_redis")
async def test_a_killed_connection_fails_then_reconnects(
    settings_: Settings, redis: RedisClient, reads: RedisReads | ClusterReads
) -> None:
    key = f"{settings_.redis_prefix}:k"
    await redis.set(key, b"v")
    assert await reads.get(key) == b"v"
    assert isinstance(reads, RedisReads)
    connection = reads._connection
    assert connection is not None and connection.transport is not None
    host, port = connection.transport.get_extra_info("sockname")[:2]
    await redis.client_kill(f"{host}:{port}")
    for _ in range(100):  # until the loss reaches the protocol
        if connection.lost is not None:
            break
        await asyncio.sleep(0.01)
    assert isinstance(connection.lost, RedisConnectionError)
    assert await reads.get(key) == b"v"


@pytest.mark.usefixtures("single_redis")
async def test_selects_the_database_in_the_url(settings_: Settings) -> None:
    assert settings_.redis_url
    parts = urlsplit(settings_.redis_url)
    url = urlunsplit(parts._replace(path="/3"))
    other = Redis.from_url(url)
    key = f"{settings_.redis_prefix}:db3"
    try:
        await other.set(key, b"in three")
        reads = RedisReads(url)
        try:
            assert await reads.get(key) == b"in three"
        finally:
            reads.close()
    finally:
        await other.delete(key)
        await other.aclose()


async def test_a_silent_server_times_out_every_waiting_read() -> None:
    accepted: list[asyncio.StreamWriter] = []

    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)

    server = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reads = RedisReads(f"redis://127.0.0.1:{port}", timeout=0.3)
    try:
        results = await asyncio.wait_for(
            asyncio.gather(*(reads.get(f"k{i}") for i in range(5)), return_exceptions=True), 5
        )
        assert all(isinstance(r, RedisTimeoutError) for r in results)
    finally:
        reads.close()
        for writer in accepted:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_a_failed_get_with_ttl_leaves_no_unread_failure() -> None:
    accepted: list[asyncio.StreamWriter] = []

    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)

    async def fail_once(port: int) -> None:
        reads = RedisReads(f"redis://127.0.0.1:{port}", timeout=0.3)
        try:
            await reads.get_with_ttl("k")
        except RedisTimeoutError:
            return
        finally:
            reads.close()
        raise AssertionError("a silent server answered")

    loop = asyncio.get_running_loop()
    unread: list[dict[str, object]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _, context: unread.append(context))
    server = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    try:
        await fail_once(server.sockets[0].getsockname()[1])
        await asyncio.sleep(0.05)
        gc.collect()  # a future's unread exception is reported when the future is collected
        assert not [c for c in unread if "never retrieved" in str(c.get("message"))], unread
    finally:
        loop.set_exception_handler(previous)
        for writer in accepted:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_nothing_listening_is_a_connection_error() -> None:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    reads = RedisReads(f"redis://127.0.0.1:{port}", timeout=1)
    with pytest.raises(RedisConnectionError):
        await reads.get("k")


async def test_get_with_ttl(
    settings_: Settings, redis: RedisClient, reads: RedisReads | ClusterReads
) -> None:
    key = f"{settings_.redis_prefix}:k"
    await redis.set(key, b"v", ex=100)
    await redis.set(f"{key}-forever", b"w")
    value, ttl = await reads.get_with_ttl(key)
    assert value == b"v" and 98 <= ttl <= 100
    assert await reads.get_with_ttl(f"{key}-forever") == (b"w", -1)
    assert await reads.get_with_ttl(f"{key}-missing") == (None, -2)
