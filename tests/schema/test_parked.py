"""Parked subscriptions (schema/parked.py): render-once subscriptions kept as records, not tasks,
with graphql-transport-ws's semantics unchanged: complete, reuse of an id, duplicates, errors,
and deliveries that race a client's `complete` or a connection failing under the write."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import websockets
from websockets.typing import Subprotocol

from homefeed.feed.services import Services
from homefeed.schema import parked
from homefeed.websocket import FrameTransportProtocol, FrameWriter
from tests.api import Account, Api
from tests.schema.pubsub_kill import hub_listening, kill_own_pubsub

DOCUMENT = "subscription { homeFeedUpdates { kind postId cursor post { id text viewerHasLiked } } }"
WAIT = 20.0  # generous: only a failing test waits it out, and a reconnect on a loaded cluster is slow


class Client:
    """A graphql-transport-ws connection, its frames collected by a task."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.frames: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.pump = asyncio.create_task(self._pump())

    async def _pump(self) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            async for raw in self.ws:
                await self.frames.put(json.loads(raw))

    async def send(self, message: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(message))

    async def subscribe(self, op_id: str, document: str = DOCUMENT) -> None:
        await self.send({"id": op_id, "type": "subscribe", "payload": {"query": document}})

    async def next_frame(self) -> dict[str, Any]:
        return await asyncio.wait_for(self.frames.get(), WAIT)

    async def silent(self) -> list[dict[str, Any]]:
        """What arrives within a short while (nothing, when nothing is due)."""
        await asyncio.sleep(0.5)
        out = []
        while not self.frames.empty():
            out.append(self.frames.get_nowait())
        return out


@contextlib.asynccontextmanager
async def connected(server: str, who: Account) -> AsyncIterator[Client]:
    url = server.replace("http://", "ws://") + "/graphql"
    async with websockets.connect(url, subprotocols=[Subprotocol("graphql-transport-ws")]) as ws:
        init = {"type": "connection_init", "payload": {"authorization": f"Bearer {who.token}"}}
        await ws.send(json.dumps(init))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        client = Client(ws)
        try:
            yield client
        finally:
            client.pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await client.pump


async def until(check: Callable[[], bool]) -> None:
    deadline = asyncio.get_running_loop().time() + WAIT
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.02)


def operation_tasks() -> list[asyncio.Task[Any]]:
    """Strawberry's per-operation tasks now running in this loop (the server runs in it)."""
    return [t for t in asyncio.all_tasks() if "run_operation" in repr(t.get_coro())]


def added(frames: list[dict[str, Any]], op_id: str) -> list[str]:
    return [
        f["payload"]["data"]["homeFeedUpdates"]["postId"]
        for f in frames
        if f.get("id") == op_id and f["type"] == "next"
    ]


@contextlib.asynccontextmanager
async def alice_subscribed(
    server: str, http: Api, services: Services, op_id: str
) -> AsyncIterator[tuple[Client, Account]]:
    """alice, following bob, connected and subscribed as op_id, registered with the hub and
    listened for on Redis: her client, and bob."""
    alice, bob = [await http.sign_up(h) for h in ("alice", "bob")]
    (await http.act(alice, "follow", bob)).ok()
    async with connected(server, alice) as client:
        await client.subscribe(op_id)
        await until(lambda: services.live.subscriber_count == 1)
        # Counted is not yet listened for (on a cluster the slot map is read first): a test that
        # drops the hub's Redis connection needs it subscribed there, or no RESYNC follows.
        await hub_listening(services, alice, bob)
        yield client, bob


async def test_a_parked_subscription_keeps_the_protocol(server: str, http: Api, services: Services) -> None:
    hub = services.live
    async with alice_subscribed(server, http, services, "1") as (client, bob):
        # Started, and kept as a record: no operation task is left running for it.
        await until(lambda: not operation_tasks())
        first = await http.post(bob, "one")
        frame = await client.next_frame()
        assert frame["id"] == "1" and frame["type"] == "next"
        assert frame["payload"]["data"]["homeFeedUpdates"]["postId"] == first

        # Its id is taken while it lives ...
        await client.send({"id": "1", "type": "complete"})
        await until(lambda: hub.subscriber_count == 0)
        await http.post(bob, "after complete")
        assert await client.silent() == []  # ... and nothing follows the client's complete.

        # The id is free again after complete.
        await client.subscribe("1")
        await until(lambda: hub.subscriber_count == 1)
        third = await http.post(bob, "three")
        assert (await client.next_frame())["payload"]["data"]["homeFeedUpdates"]["postId"] == third

        # A second subscribe under a live id closes the connection, as the protocol says.
        await client.subscribe("1")
        await asyncio.wait_for(client.pump, WAIT)
        assert client.ws.close_code == 4409
    await until(lambda: hub.subscriber_count == 0)


async def test_a_client_that_completes_during_a_delivery_gets_nothing_after_it(
    server: str, http: Api, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice, carol, bob = [await http.sign_up(h) for h in ("alice", "carol", "bob")]
    for viewer in (alice, carol):
        (await http.act(viewer, "follow", bob)).ok()
    hub = services.live
    async with connected(server, alice) as a, connected(server, carol) as c:
        await a.subscribe("1")
        await c.subscribe("1")
        await until(lambda: hub.subscriber_count == 2)
        # The delivery reads who liked the post (the document asks viewerHasLiked) before it
        # writes: alice's complete is handled by the server while it waits there.
        liked_pairs = services.likes.liked_pairs

        async def completing(pairs: list[tuple[int, int]]) -> Any:
            if hub.subscriber_count == 2:
                await a.send({"id": "1", "type": "complete"})
                await until(lambda: hub.subscriber_count == 1)
            return await liked_pairs(pairs)

        monkeypatch.setattr(services.likes, "liked_pairs", completing)
        post = await http.post(bob, "raced")
        assert added([await c.next_frame()], "1") == [post]
        assert await a.silent() == []


async def test_a_connection_failing_under_the_write_loses_no_one_elses_update(
    server: str, http: Api, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    people = [await http.sign_up(h) for h in ("alice", "carol", "dave", "erin")]
    bob = await http.sign_up("bob")
    for viewer in people:
        (await http.act(viewer, "follow", bob)).ok()
    hub = services.live
    write_text = FrameWriter.write_text
    failed: list[FrameWriter] = []

    def failing_once(self: FrameWriter, payload: bytes) -> bool:
        if not failed:
            failed.append(self)
            raise ConnectionResetError("dropped under the write")
        return write_text(self, payload)

    async with contextlib.AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(connected(server, who)) for who in people]
        for client in clients:
            await client.subscribe("1")
        await until(lambda: hub.subscriber_count == len(people))
        monkeypatch.setattr(FrameWriter, "write_text", failing_once)
        post = await http.post(bob, "one write fails")
        got = [
            added([await client.next_frame()], "1") + added(await client.silent(), "1") for client in clients
        ]
        # Everyone has it exactly once: the failed connection (which here still works) through
        # its own path, the others straight from the same delivery.
        assert failed and got == [[post]] * len(people)

        # And a connection really dropped while an update goes out takes nothing from the others.
        liked_pairs = services.likes.liked_pairs

        async def dropping(pairs: list[tuple[int, int]]) -> Any:
            clients[0].ws.transport.abort()
            return await liked_pairs(pairs)

        monkeypatch.setattr(services.likes, "liked_pairs", dropping)
        second = await http.post(bob, "one connection drops")
        for client in clients[1:]:
            assert added([await client.next_frame()], "1") == [second]
        await until(lambda: hub.subscriber_count == len(people) - 1)


async def test_a_failure_to_render_a_queued_event_ends_the_operation_as_a_stream_would(
    server: str, http: Api, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub = services.live
    async with alice_subscribed(server, http, services, "7") as (client, _):

        async def broken(*args: Any) -> Awaitable[Any]:
            raise RuntimeError("rendering failed")

        monkeypatch.setattr(parked, "render", broken)
        # A RESYNC goes through the subscriber's queue (the hub reconnecting to Redis sends one).
        await kill_own_pubsub(services)
        error = await client.next_frame()
        assert error["id"] == "7" and error["type"] == "next"
        assert error["payload"]["data"] is None and error["payload"]["errors"]
        assert error["payload"]["errors"][0]["extensions"]["code"] == "INTERNAL"
        assert await client.next_frame() == {"id": "7", "type": "complete"}
        await until(lambda: hub.subscriber_count == 0)
        # The id is free again.
        monkeypatch.undo()
        await client.subscribe("7")
        await until(lambda: hub.subscriber_count == 1)


async def test_an_open_websocket_keeps_no_handshake_headers(
    server: str, http: Api, services: Services
) -> None:
    # websockets' frame parser, suspended for the connection's life, holds the handshake request
    # in a local: its headers (a few KB per idle connection) are emptied once accepted.
    alice = await http.sign_up("alice")
    async with connected(server, alice) as client:
        await client.subscribe("1")
        await until(lambda: services.live.subscriber_count == 1)
        (protocol,) = [
            o for o in gc.get_objects() if type(o) is FrameTransportProtocol and not o.disconnected
        ]
        assert protocol.request is None and protocol.response is None
        held = protocol.conn.parser.gi_frame.f_locals.get("request")
        assert held is not None and len(held.headers) == 0
