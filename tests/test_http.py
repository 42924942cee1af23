"""The HTTP protocol: a whole answer in one write, everything else written as uvicorn writes it.

Driven through uvicorn's own protocol and request cycle, with a transport that records writes;
then over a real server, where the answers must read the same to a client.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from uvicorn.config import Config
from uvicorn.server import ServerState

from homefeed.feed.services import Services
from homefeed.http import OneWriteHttpProtocol
from tests.server import running_server


class RecordingTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 5000), "sockname": ("127.0.0.1", 8000)}.get(name, default)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def serve_once(app: Any, request: bytes) -> RecordingTransport:
    """One request through the protocol; the transport holds what it wrote."""
    config = Config(app=app, log_level="warning", access_log=False)
    config.load()
    protocol = OneWriteHttpProtocol(config=config, server_state=ServerState(), app_state={})
    transport = RecordingTransport()
    protocol.connection_made(transport)
    protocol.data_received(request)
    return transport


async def settled(app: Any, request: bytes) -> RecordingTransport:
    transport = serve_once(app, request)
    for _ in range(20):
        await asyncio.sleep(0)
    return transport


def app_sending(*messages: dict[str, Any], fail: bool = False) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        for message in messages:
            await send(message)
        if fail:
            raise RuntimeError("the app failed after starting its answer")

    return app


START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [(b"content-length", b"5"), (b"content-type", b"application/json")],
}
GET = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"


async def test_a_whole_answer_is_one_write_of_the_head_and_the_body() -> None:
    transport = await settled(app_sending(START, {"type": "http.response.body", "body": b"[1,2]"}), GET)
    [written] = transport.writes
    head, _, body = written.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"content-length: 5" in head and b"content-type: application/json" in head
    assert body == b"[1,2]"
    assert not transport.closed


async def test_an_empty_body_still_takes_the_head_out() -> None:
    start = {**START, "headers": [(b"content-length", b"0")]}
    transport = await settled(app_sending(start, {"type": "http.response.body", "body": b""}), GET)
    [written] = transport.writes
    assert written.startswith(b"HTTP/1.1 200 OK\r\n") and written.endswith(b"\r\n\r\n")


async def test_a_body_in_parts_goes_out_with_the_head_then_part_by_part() -> None:
    parts: list[dict[str, Any]] = [
        {"type": "http.response.body", "body": b"[1", "more_body": True},
        {"type": "http.response.body", "body": b",2]"},
    ]
    transport = await settled(app_sending(START, *parts), GET)
    assert len(transport.writes) == 2
    assert transport.writes[0].endswith(b"\r\n\r\n[1") and transport.writes[1] == b",2]"


async def test_a_streamed_answer_writes_its_head_at_once() -> None:
    # No length: chunked, and the head must not wait for an event that may come much later.
    start = {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]}
    transport = await settled(app_sending(start), GET)
    [head] = transport.writes
    assert head.startswith(b"HTTP/1.1 200 OK\r\n") and b"transfer-encoding: chunked" in head


async def test_a_head_request_writes_its_head_at_once() -> None:
    # uvicorn never writes a HEAD answer's body: a held head would never go out.
    transport = await settled(app_sending(START), b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n")
    [head] = transport.writes
    assert head.startswith(b"HTTP/1.1 200 OK\r\n") and head.endswith(b"\r\n\r\n")


async def test_an_app_failing_after_its_start_has_the_head_written_before_the_close() -> None:
    transport = await settled(app_sending(START, fail=True), GET)
    [head] = transport.writes
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert transport.closed


async def test_a_response_longer_than_declared_is_refused_as_uvicorn_refuses_it() -> None:
    body = {"type": "http.response.body", "body": b"[1,2,3]"}
    seen: list[BaseException] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send(START)
        try:
            await send(body)
        except RuntimeError as exc:
            seen.append(exc)
            raise

    await settled(app, GET)
    assert [str(e) for e in seen] == ["Response content longer than Content-Length"]


@pytest.mark.parametrize("keep_alive", [True, False])
async def test_answers_over_a_real_server_read_the_same(services: Services, keep_alive: bool) -> None:
    async with running_server(services) as url:
        limits = httpx.Limits(max_keepalive_connections=1 if keep_alive else 0)
        async with httpx.AsyncClient(base_url=url, limits=limits) as client:
            for _ in range(3):
                answer = await client.post("/graphql", json={"query": "{ __typename }"})
                assert answer.status_code == 200
                assert answer.headers["content-type"] == "application/json"
                assert answer.json()["data"] == {"__typename": "Query"}
            head = await client.head("/static/client/app.js")
            assert head.status_code == 200 and int(head.headers["content-length"]) > 0
            assert head.content == b""
            script = await client.get("/static/client/app.js")
            assert len(script.content) == int(head.headers["content-length"])
