"""The live bench's load generator, a process of its own: the subscribers and when updates reach them."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection

import orjson

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
        # Imported here: only the load-generator process needs the client library.
        import websockets
        from websockets.typing import Subprotocol

        protocol = self.plan.protocols[index]
        legacy = protocol == LEGACY_WS
        try:
            async with gate:
                ws = await websockets.connect(
                    self.plan.ws_url,
                    subprotocols=[Subprotocol(protocol)],
                    open_timeout=120,
                    ping_interval=None,  # GraphQL clients keep alive with protocol messages
                    max_queue=None,
                    compression="deflate" if self.plan.compression else None,
                )
                await ws.send(
                    orjson.dumps(
                        {
                            "type": "connection_init",
                            "payload": {"authorization": f"Bearer {self.plan.tokens[index]}"},
                        }
                    ).decode()
                )
                while True:
                    message = orjson.loads(await asyncio.wait_for(ws.recv(), 120))
                    if message.get("type") == "connection_ack":
                        break
                    if message.get("type") not in ("ka", "ping", "pong"):
                        raise RuntimeError(f"unexpected {message!r} before connection_ack")
                start = {
                    "id": "1",
                    "type": "start" if legacy else "subscribe",
                    "payload": {"query": self.plan.query},
                }
                await ws.send(orjson.dumps(start).decode())
        except Exception as exc:
            self.failed.append(f"subscriber {index} ({protocol}): {type(exc).__name__}: {exc}")
            ready.set_result(None)
            return
        ready.set_result(None)
        try:
            async for raw in ws:
                at = time.time()
                message = orjson.loads(raw)
                kind = message.get("type")
                if kind in ("next", "data"):
                    update = (message.get("payload") or {}).get("data", {}).get("homeFeedUpdates") or {}
                    if update.get("kind") == "ADDED":
                        self._record(update["postId"], index, at)
                    elif update.get("kind") == "RESYNC":
                        self.resyncs += 1
                elif kind == "ping":
                    await ws.send('{"type":"pong"}')
                elif kind in ("error", "complete"):
                    self.failed.append(f"subscriber {index} ({protocol}): {message!r}")
                    break
        except asyncio.CancelledError:
            pass
        except Exception as exc:
            if not self.stopping:
                self.failed.append(f"subscriber {index} ({protocol}) lost: {type(exc).__name__}: {exc}")
        finally:
            if not self.stopping:
                self.closed_early += 1
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), 5)
