"""Fixtures of the schema's tests that need a real server (websockets)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from homefeed.feed.services import Services
from tests.api import Api
from tests.server import running_server


@pytest.fixture
async def server(services: Services) -> AsyncIterator[str]:
    """The app served over TCP by uvicorn, for the test's services; its base URL."""
    async with running_server(services) as url:
        yield url


@pytest.fixture
async def http(server: str) -> AsyncIterator[Api]:
    """An HTTP client of that server."""
    async with httpx.AsyncClient(base_url=server) as client:
        yield Api(client)
