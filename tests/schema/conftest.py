"""Fixtures of the schema's tests: a real server (websockets), and spies on the two executors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from homefeed.feed.services import Services
from homefeed.schema.execution import compiled, run
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


def _spy(monkeypatch: pytest.MonkeyPatch, owner: type, method: str) -> list[Any]:
    """Records the argument of every call of `owner.method(self, arg)` during the test."""
    seen: list[Any] = []
    original = getattr(owner, method)

    def spy(self: Any, arg: Any) -> Any:
        seen.append(arg)
        return original(self, arg)

    monkeypatch.setattr(owner, method, spy)
    return seen


@pytest.fixture
def compiled_runs(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The generated code executed during the test (the compiled executor runs nothing else)."""
    return _spy(monkeypatch, compiled.Runtime, "execute")


@pytest.fixture
def planned_runs(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The plans the planned executor ran during the test: the plan was taken, not a fallback."""
    return _spy(monkeypatch, run.Run, "execute")
