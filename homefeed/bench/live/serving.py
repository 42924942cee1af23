"""The API process under test: warming it up, its memory and connections, and its posts' clean-up."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Sequence

import orjson
import psutil

from homefeed.bench.live.api import DELETE_POST, SUBSCRIPTION, TRANSPORT_WS, graphql, post_pk
from homefeed.bench.live.base import BenchBase
from homefeed.bench.server import ServedApi
from homefeed.feed.pubsub import subscriber_counts


def cpu_seconds(pid: int | None) -> float:
    try:
        times = psutil.Process(pid).cpu_times()
        return times.user + times.system
    except (psutil.Error, ValueError):
        return 0.0


def other_homefeed_processes(mine: set[int]) -> list[str]:
    """Other `homefeed` commands running here: their fan-out workers share this database's outbox."""
    found = []
    for p in psutil.process_iter(["pid", "cmdline"]):
        cmd = p.info.get("cmdline") or []
        text = " ".join(cmd)
        if (
            p.info["pid"] in mine
            or "homefeed" not in text
            or not any(verb in cmd for verb in ("bench", "worker", "serve"))
        ):
            continue
        if os.path.basename(cmd[0]) in {"uv", "timeout", "time", "bash", "sh", "env"}:
            continue  # a wrapper of one listed anyway
        found.append(f"{p.info['pid']}: {' '.join(cmd[1:])[:80]}")
    return found


class Serving(BenchBase):
    """What the bench asks of the API's processes, and of Redis about them."""

    async def _warm_up(self, server: ServedApi, token: str, sub_token: str) -> None:
        """A query and short-lived subscriptions, so lazy imports and caches do not count per socket."""
        await graphql(server.url, "query { viewer { id } homeFeed(first: 5) { nodes { id } } }", {}, token)
        import websockets
        from websockets.typing import Subprotocol

        url = server.url.replace("http://", "ws://") + "/graphql"
        for _ in range(3):
            async with websockets.connect(url, subprotocols=[Subprotocol(TRANSPORT_WS)]) as ws:
                init = {"type": "connection_init", "payload": {"authorization": f"Bearer {sub_token}"}}
                await ws.send(orjson.dumps(init).decode())
                await asyncio.wait_for(ws.recv(), 30)
                start = {"id": "1", "type": "subscribe", "payload": {"query": SUBSCRIPTION}}
                await ws.send(orjson.dumps(start).decode())
                await asyncio.sleep(0.3)

    async def _settled_rss(self, server: ServedApi) -> int:
        """RSS once it stops moving (the server may still be finishing work)."""
        last = server.rss()
        for _ in range(10):
            await asyncio.sleep(1.0)
            now = server.rss()
            if abs(now - last) < 256 * 1024:
                return now
            last = now
        return last

    async def _await_registered(self, subs: Sequence[int], failed: Sequence[str], within: float) -> None:
        """Wait until the server's hub listens on every connected subscriber's own channel."""
        channels = [f"{self.settings.redis_prefix}:live:user:{u}" for u in subs]
        wanted = len(subs) - len(failed)
        deadline = time.monotonic() + within
        while True:
            registered = sum(1 for n in await subscriber_counts(self.redis, channels) if n)
            if registered >= wanted:
                return
            if time.monotonic() > deadline:
                self.notes.append(f"only {registered:,} of {wanted:,} subscriptions registered in time")
                return
            await asyncio.sleep(0.25)

    async def _pubsub_connections(self, server: ServedApi) -> tuple[int, int]:
        """Pub/sub connections on the Redis server: those of the API's processes, and all of them."""
        clients = await self.redis.client_list(_type="pubsub")
        ours = server.local_addresses()
        return sum(1 for c in clients if c.get("addr") in ours), len(clients)

    async def _delete_posts(self, server: ServedApi) -> None:
        """Delete the bench's posts through the API, which also takes them out of every timeline."""
        if not self.created or server.proc.poll() is not None:
            return
        for post_id, token in self.created:
            await graphql(server.url, DELETE_POST, {"id": post_id}, token)
        ids = [post_pk(gid) for gid, _ in self.created]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if not await self.pool.fetchval(
                "SELECT count(*) FROM outbox WHERE subject_id = ANY($1::bigint[])", ids
            ):
                return
            await asyncio.sleep(0.2)
        self.notes.append(
            "the outbox still held jobs when the server stopped; `homefeed worker` will finish them"
        )
