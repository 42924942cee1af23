"""A real HTTP/websocket server for tests that need a network client: uvicorn in the test's event loop."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn

from homefeed.app import create_app
from homefeed.feed.services import Services
from homefeed.websocket import uvicorn_options
from homefeed.workers.fanout_worker import FanoutWorker


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@asynccontextmanager
async def running_server(services: Services) -> AsyncIterator[str]:
    """Serve the app with a fan-out worker beside it; yields the base URL (http://127.0.0.1:port)."""
    port = free_port()
    # The websocket transport `serve` uses, whose frame writer live updates go through.
    config = uvicorn.Config(
        create_app(services=services), port=port, log_level="warning", lifespan="on", **uvicorn_options()
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    stop = asyncio.Event()
    working = asyncio.create_task(FanoutWorker(services).run_forever(stop))
    while not server.started:
        if serving.done():
            serving.result()
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop.set()
        server.should_exit = True
        await asyncio.gather(serving, working)
