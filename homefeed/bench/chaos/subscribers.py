"""Live subscribers on graphql-transport-ws that ride out the faults as a client would.

A subscriber whose socket drops reconnects to a running API process, subscribes again, then
refetches its feed (the documented way to catch up): that refetch counts as a resync, like a
RESYNC from the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from dataclasses import dataclass, field

import orjson
from redis.asyncio import Redis

from homefeed.bench.chaos.client import FEED, SUBSCRIPTION, Client, pk_of
from homefeed.bench.chaos.fleet import Fleet
from homefeed.bench.chaos.world import World

PROTOCOL = "graphql-transport-ws"


@dataclass
class Seen:
    """What one subscriber received."""

    user: int
    added: dict[int, float] = field(default_factory=dict)  # post -> first ADDED (wall clock)
    duplicates: int = 0  # ADDED again for a post already added
    resyncs: list[float] = field(default_factory=list)  # server RESYNCs
    reconnects: list[float] = field(default_factory=list)  # the refetch after each reconnect
    drops: list[str] = field(default_factory=list)  # why each connection ended or failed
    connected: asyncio.Event = field(default_factory=asyncio.Event)


class Subscribers:
    """One task per subscriber, each reconnecting until stopped."""

    def __init__(self, world: World, fleet: Fleet, client: Client, seed: int) -> None:
        self.world = world
        self.fleet = fleet
        self.client = client
        self.rng = random.Random(seed + 2)
        self.seen = [Seen(u) for u in world.subscribers]
        self.tasks: list[asyncio.Task[None]] = []
        self.refetches: set[asyncio.Task[None]] = set()  # referenced, or the loop may drop them
        self.stopping = False

    async def start(self, redis_url: str, prefix: str, within: float) -> int:
        """Connect everyone; wait until the servers listen on their channels. The number registered."""
        gate = asyncio.Semaphore(20)
        self.tasks = [asyncio.create_task(self._subscriber(s, gate)) for s in self.seen]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*(s.connected.wait() for s in self.seen)), within)
        channels = [f"{prefix}:live:user:{s.user}" for s in self.seen]
        redis = Redis.from_url(redis_url)
        deadline = time.monotonic() + within
        try:
            while True:
                registered = sum(1 for _, n in await redis.pubsub_numsub(*channels) if n) if channels else 0
                if registered >= len(channels) or time.monotonic() > deadline:
                    return registered
                await asyncio.sleep(0.25)
        finally:
            await redis.aclose()

    async def stop(self) -> None:
        self.stopping = True
        for task in [*self.tasks, *self.refetches]:
            task.cancel()
        await asyncio.gather(*self.tasks, *self.refetches, return_exceptions=True)

    async def _subscriber(self, seen: Seen, gate: asyncio.Semaphore) -> None:
        import websockets
        from websockets.typing import Subprotocol

        token = self.world.tokens[seen.user]
        first = True
        while not self.stopping:
            live = self.fleet.urls()
            if not live:
                await asyncio.sleep(0.2)
                continue
            url = self.rng.choice(live)[1]
            try:
                async with gate:
                    ws = await websockets.connect(
                        url.replace("http://", "ws://") + "/graphql",
                        subprotocols=[Subprotocol(PROTOCOL)],
                        open_timeout=30,
                        ping_interval=None,
                        max_queue=None,
                        compression=None,
                    )
                    init = {"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}}
                    await ws.send(orjson.dumps(init).decode())
                    while orjson.loads(await asyncio.wait_for(ws.recv(), 30)).get("type") != "connection_ack":
                        pass
                    start = {"id": "1", "type": "subscribe", "payload": {"query": SUBSCRIPTION}}
                    await ws.send(orjson.dumps(start).decode())
                if first:
                    first = False
                    seen.connected.set()
                else:
                    task = asyncio.create_task(self._refetch(seen, url, token))
                    self.refetches.add(task)
                    task.add_done_callback(self.refetches.discard)
                try:
                    await self._receive(seen, ws)
                finally:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(ws.close(), 2)
                seen.drops.append("closed")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                seen.drops.append(type(exc).__name__)
                await asyncio.sleep(self.rng.uniform(0.1, 0.5))

    async def _receive(self, seen: Seen, ws: object) -> None:
        async for raw in ws:  # type: ignore[attr-defined]
            message = orjson.loads(raw)
            kind = message.get("type")
            if kind == "next":
                update = ((message.get("payload") or {}).get("data") or {}).get("homeFeedUpdates") or {}
                if update.get("kind") == "ADDED":
                    pk = pk_of(update["postId"])
                    if pk in seen.added:
                        seen.duplicates += 1
                    else:
                        seen.added[pk] = time.time()
                elif update.get("kind") == "RESYNC":
                    seen.resyncs.append(time.time())
            elif kind == "ping":
                await ws.send('{"type":"pong"}')  # type: ignore[attr-defined]
            elif kind in ("error", "complete"):
                return

    async def _refetch(self, seen: Seen, url: str, token: str) -> None:
        """After resubscribing, read the first page, as the API's reconnect advice says."""
        for _ in range(20):
            reply = await self.client.call(url, FEED, {"first": 20}, token)
            if reply.ok:
                seen.reconnects.append(time.time())
                return
            await asyncio.sleep(0.25)
