"""Fixtures of the schema's tests: a real server (websockets), and a spy on the generated code."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from homefeed.feed.services import Services
from homefeed.schema.execution import compiled
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


@pytest.fixture
def compiled_runs(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[object]]:
    """The generated code executed during the test (the compiled executor runs nothing else)."""
    seen: list[object] = []
    original = compiled.Runtime.execute

    def spy(self: compiled.Runtime, code: Any) -> Any:
        seen.append(code)
        return original(self, code)

    monkeypatch.setattr(compiled.Runtime, "execute", spy)
    yield seen
