"""Subscriptions speak HTTP's error language: masked, coded, and refused over plain HTTP."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import websockets
from websockets.asyncio.client import ClientConnection
from websockets.typing import Subprotocol

from homefeed.feed.errors import Forbidden
from homefeed.feed.services import Services
from tests.api import Account, Api

SECRET = "asyncpg: password authentication failed for user homefeed at 10.0.0.5"
UPDATES = "subscription { homeFeedUpdates { kind postId } }"
TRANSPORT_WS = "graphql-transport-ws"
LEGACY_WS = "graphql-ws"
PROTOCOLS = [TRANSPORT_WS, LEGACY_WS]
WAIT = 5.0


class Socket:
    """A raw websocket client of either protocol, so the test sees every frame as sent."""

    def __init__(self, ws: ClientConnection, protocol: str) -> None:
        self.ws = ws
        self.protocol = protocol

    async def init(self, who: Account) -> None:
        payload = {"authorization": f"Bearer {who.token}"}
        await self.ws.send(json.dumps({"type": "connection_init", "payload": payload}))
        assert (await self.frame())["type"] == "connection_ack"

    async def start(self, op_id: str, query: str) -> None:
        kind = "subscribe" if self.protocol == TRANSPORT_WS else "start"
        await self.ws.send(json.dumps({"id": op_id, "type": kind, "payload": {"query": query}}))

    async def frame(self) -> dict[str, Any]:
        while True:
            raw = await asyncio.wait_for(self.ws.recv(), WAIT)
            frame: dict[str, Any] = json.loads(raw)
            if frame["type"] != "ka":  # legacy keep-alives
                return frame

    async def errors_of(self, op_id: str) -> tuple[str, list[dict[str, Any]]]:
        """The raw text of the first frame for the operation that carries errors, and its errors."""
        while True:
            received = await asyncio.wait_for(self.ws.recv(), WAIT)
            raw = received if isinstance(received, str) else received.decode()
            frame = json.loads(raw)
            if frame.get("id") != op_id:
                continue
            payload = frame.get("payload")
            if frame["type"] == "error":
                return raw, payload if isinstance(payload, list) else [payload]
            if isinstance(payload, dict) and payload.get("errors"):
                return raw, payload["errors"]
            assert frame["type"] not in ("complete",), f"completed without an error: {raw}"


@asynccontextmanager
async def connect(server: str, protocol: str, who: Account) -> AsyncIterator[Socket]:
    url = server.replace("http://", "ws://") + "/graphql"
    async with websockets.connect(url, subprotocols=[Subprotocol(protocol)]) as ws:
        socket = Socket(ws, protocol)
        await socket.init(who)
        yield socket


def codes(errors: list[dict[str, Any]]) -> list[str]:
    return [e.get("extensions", {}).get("code") for e in errors]


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_an_internal_failure_is_masked_and_logged_only(
    server: str,
    http: Api,
    services: Services,
    protocol: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    alice = await http.sign_up("alice")

    async def broken(*args: object) -> None:
        raise RuntimeError(SECRET)

    monkeypatch.setattr(services.feeds, "touch", broken)
    async with connect(server, protocol, alice) as socket:
        await socket.start("1", UPDATES)
        raw, errors = await socket.errors_of("1")
    assert "10.0.0.5" not in raw and "asyncpg" not in raw
    assert [e["message"] for e in errors] == ["Internal server error"]
    assert codes(errors) == ["INTERNAL"]
    # The details are for the operator: in the server's log, with the traceback.
    logged = [r for r in caplog.records if r.levelno >= logging.ERROR and r.exc_info]
    assert any(SECRET in str(r.exc_info[1]) for r in logged if r.exc_info)


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_an_engine_error_keeps_its_code(
    server: str, http: Api, services: Services, protocol: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = await http.sign_up("alice")

    async def forbidden(*args: object) -> None:
        raise Forbidden("not for you")

    monkeypatch.setattr(services.feeds, "touch", forbidden)
    async with connect(server, protocol, alice) as socket:
        await socket.start("1", UPDATES)
        _, errors = await socket.errors_of("1")
    assert [e["message"] for e in errors] == ["not for you"]
    assert codes(errors) == ["FORBIDDEN"]


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize(
    "query", ["subscription { noSuchField }", "subscription { homeFeedUpdates {", "{ nope }"]
)
async def test_invalid_documents_are_the_clients_fault(
    server: str, http: Api, protocol: str, query: str
) -> None:
    alice = await http.sign_up("alice")
    async with connect(server, protocol, alice) as socket:
        await socket.start("1", query)
        _, errors = await socket.errors_of("1")
    assert errors and set(codes(errors)) == {"BAD_USER_INPUT"}


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_the_subscription_limit_is_coded(server: str, http: Api, protocol: str) -> None:
    alice = await http.sign_up("alice")
    async with connect(server, protocol, alice) as socket:
        for i in range(10):
            await socket.start(str(i), UPDATES)
        await asyncio.sleep(0.3)  # let the server register them
        await socket.start("10", UPDATES)
        _, errors = await socket.errors_of("10")
    assert "limit" in errors[0]["message"].lower()
    assert codes(errors) == ["BAD_USER_INPUT"]


def _is_websocket_pointer(error: dict[str, Any]) -> bool:
    message = str(error["message"])
    return (
        error["extensions"]["code"] == "BAD_USER_INPUT"
        and "/graphql" in message
        and "graphql-transport-ws" in message
        and "graphql-ws" in message.replace("graphql-transport-ws", "")
    )


async def test_a_subscription_over_http_is_refused_without_a_traceback(
    server: str, http: Api, caplog: pytest.LogCaptureFixture
) -> None:
    alice = await http.sign_up("alice")
    headers = {"Authorization": f"Bearer {alice.token}"}
    caplog.clear()
    post = await http.http.post("/graphql", json={"query": UPDATES}, headers=headers)
    get = await http.http.get("/graphql", params={"query": UPDATES}, headers=headers)
    for response in (post, get):
        errors = response.json()["errors"]
        assert response.json().get("data") is None
        assert len(errors) == 1 and _is_websocket_pointer(errors[0]), errors

    multipart = {**headers, "Accept": 'multipart/mixed;subscriptionSpec="1.0", application/json'}
    for method in ("POST", "GET"):
        request = (
            http.http.post("/graphql", json={"query": UPDATES}, headers=multipart)
            if method == "POST"
            else http.http.get("/graphql", params={"query": UPDATES}, headers=multipart)
        )
        body = (await asyncio.wait_for(request, WAIT)).text
        assert "BAD_USER_INPUT" in body and "graphql-transport-ws" in body, body
        assert "INTERNAL" not in body and "Cannot return null" not in body, body

    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_queries_and_mutations_still_run_over_http(http: Api) -> None:
    alice = await http.sign_up("alice")
    assert (await http.feed(alice, 5)).ok()["homeFeed"]["edges"] == []


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_failure_mid_stream_is_masked_too(
    server: str, http: Api, services: Services, protocol: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = await http.sign_up("alice")
    async with connect(server, protocol, alice) as socket:
        # With its cursor: an event rendered once encodes only the cursors its document asks for.
        await socket.start("1", "subscription { homeFeedUpdates { kind postId cursor } }")
        await asyncio.sleep(0.3)  # subscribed before the failure is armed

        def broken(*args: object) -> bytes:
            raise RuntimeError(SECRET)

        # encode_ascii under both: the per-subscriber path (encode) and the hub's frames.
        monkeypatch.setattr(services.cursors, "encode_ascii", broken)
        await http.post(alice, "announced to her own feed")
        raw, errors = await socket.errors_of("1")
    assert "10.0.0.5" not in raw and "asyncpg" not in raw
    assert [e["message"] for e in errors] == ["Internal server error"]
    assert codes(errors) == ["INTERNAL"]
