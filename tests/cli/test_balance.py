"""Connections spread evenly over `serve --workers N`, handed over between processes."""

from __future__ import annotations

import asyncio
import collections
import threading

import psutil
import websockets
from websockets.typing import Subprotocol

from homefeed.bench.server import ServedApi
from homefeed.cli.balance import Balance
from homefeed.feed import config
from homefeed.feed.config import Settings


def test_a_connection_goes_to_the_least_loaded_process_and_is_counted_there() -> None:
    counts = [3, 3, 3]
    parts = Balance.for_processes(3, counts, threading.Lock())
    try:
        assert parts[1].place() == 1  # a tie: kept
        assert counts == [3, 4, 3]
        assert parts[1].place() == 0  # the first of the least loaded
        assert counts == [4, 4, 3]
        assert parts[0].place() == 2
        assert counts == [4, 4, 4]
        parts[2].move(2, 0)  # could not be handed over after all
        assert counts == [5, 4, 3]
        parts[0].release()
        assert counts == [4, 4, 3]
    finally:
        for p in parts:
            p.close()


async def _healthz(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> int:
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
    await writer.drain()
    status = int((await asyncio.wait_for(reader.readline(), 10)).split()[1])
    length = 0
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.partition(b":")
        if name.lower() == b"content-length":
            length = int(value)
    await reader.readexactly(length)
    return status


async def test_keep_alive_connections_split_evenly_and_are_served(settings_: Settings) -> None:
    server = ServedApi(settings_, config.jwt_secret(settings_), 2, {"HOMEFEED_INPROCESS_WORKER": "0"})
    try:
        await server.wait_healthy(60)
        streams = [await asyncio.open_connection("127.0.0.1", server.port) for _ in range(30)]
        # Each connection answers, several requests in a row, wherever it ended up.
        for _ in range(3):
            assert [await _healthz(r, w) for r, w in streams] == [200] * 30
        held: collections.Counter[int] = collections.Counter()
        for worker in server.workers():
            for c in worker.net_connections(kind="tcp"):
                if c.laddr and c.laddr.port == server.port and c.status == psutil.CONN_ESTABLISHED:
                    held[worker.pid] += 1
        assert sorted(held.values()) == [15, 15]  # by the hash alone: 15/15 about one time in seven
        for _, writer in streams:
            writer.close()
    finally:
        server.stop()


async def _connections_gauge(port: int) -> float:
    """The `homefeed_connections` of the process that serves a new connection (itself included)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"GET /metrics HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        await writer.drain()
        body = (await asyncio.wait_for(reader.read(), 10)).decode()
    finally:
        writer.close()
    return next(
        float(line.split()[1]) for line in body.splitlines() if line.startswith("homefeed_connections ")
    )


async def test_websockets_are_balanced_and_counted_until_they_close(settings_: Settings) -> None:
    server = ServedApi(settings_, config.jwt_secret(settings_), 2, {"HOMEFEED_INPROCESS_WORKER": "0"})
    try:
        await server.wait_healthy(60)
        url = f"ws://127.0.0.1:{server.port}/graphql"
        sockets = [
            await websockets.connect(url, subprotocols=[Subprotocol("graphql-transport-ws")])
            for _ in range(10)
        ]
        assert await _connections_gauge(server.port) == 6  # 5 websockets and this request
        for ws in sockets:
            await ws.close()
        for _ in range(50):  # the server sees the closes a moment later
            if await _connections_gauge(server.port) == 1:
                break
            await asyncio.sleep(0.1)
        assert await _connections_gauge(server.port) == 1
    finally:
        server.stop()


async def test_connections_are_not_handed_to_a_process_that_died(settings_: Settings) -> None:
    server = ServedApi(settings_, config.jwt_secret(settings_), 2, {"HOMEFEED_INPROCESS_WORKER": "0"})
    try:
        await server.wait_healthy(60)
        server.workers()[1].kill()
        await asyncio.sleep(0.5)
        # The survivor takes every new connection, and each new one finds it holding more
        # connections than the dead process's count: it must keep them, not send them there.
        streams = [await asyncio.open_connection("127.0.0.1", server.port) for _ in range(6)]
        assert [await _healthz(r, w) for r, w in streams] == [200] * 6
        for _, writer in streams:
            writer.close()
    finally:
        server.stop()
