"""The app served by uvicorn on a thread of its own, for clients that block (schemathesis calls it
with requests): its own event loop, its own pools opened by the app's lifespan, a real socket."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

from homefeed.app import create_app
from homefeed.feed.auth import Passwords
from homefeed.feed.config import Settings
from homefeed.feed.services import Services, open_services
from homefeed.websocket import uvicorn_options
from tests.server import free_port


@contextmanager
def served_on_a_thread(settings: Settings, passwords: Passwords) -> Iterator[str]:
    """Serve create_app(settings) until the block ends; yields the base URL."""

    async def opener(opened_with: Settings) -> Services:
        return await open_services(opened_with, passwords=passwords)

    port = free_port()
    app = create_app(settings, opener=opener)
    server = uvicorn.Server(
        uvicorn.Config(app, port=port, log_level="warning", lifespan="on", **uvicorn_options())
    )
    thread = threading.Thread(target=server.run, name="served-app", daemon=True)
    thread.start()
    try:
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("the served app failed to start (see the log above)")
            time.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
