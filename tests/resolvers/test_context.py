"""A request's viewer is looked up once, whichever fields ask for it at the same time."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from homefeed.feed.errors import Unauthenticated
from homefeed.feed.services import Services
from homefeed.loaders import build as build_loaders
from homefeed.resolvers import context
from homefeed.resolvers.context import GONE, Context


class _FirstAnswersLast:
    """The users loader, with its first look-up answering after the ones behind it."""

    def __init__(self, real: Any, loads: list[int]) -> None:
        self._real = real
        self._loads = loads

    async def load(self, user_id: int) -> Any:
        first = not self._loads
        self._loads.append(user_id)
        if first:
            await asyncio.sleep(0.05)
        return await self._real.load(user_id)


@pytest.fixture
def loads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    seen: list[int] = []

    def build(services: Services, viewer: int | None) -> Any:
        return SimpleNamespace(users=_FirstAnswersLast(build_loaders(services, viewer).users, seen))

    monkeypatch.setattr(context, "build", build)
    return seen


async def test_sibling_fields_hear_of_a_gone_user_in_the_order_they_asked(
    services: Services, loads: list[int]
) -> None:
    # Two look-ups raced before: the second field's could answer first, so the same request
    # reported the gone user at one field or another from run to run.
    ctx = Context(services, services.tokens.issue(10**15), "client")
    heard: list[str] = []

    async def field(name: str) -> None:
        try:
            await ctx.viewer_id()
        except Unauthenticated as exc:
            assert str(exc) == GONE
            heard.append(name)
            raise

    results = await asyncio.gather(field("first"), field("second"), return_exceptions=True)
    assert all(isinstance(r, Unauthenticated) for r in results), results
    assert heard == ["first", "second"]
    assert len(loads) == 1


async def test_a_field_cancelled_while_waiting_leaves_the_look_up_to_the_others(
    services: Services, loads: list[int]
) -> None:
    user_id = (await services.users.create("ctxuser", "Ctx", "hash")).id
    ctx = Context(services, services.tokens.issue(user_id), "client")
    first = asyncio.ensure_future(ctx.viewer_id())
    second = asyncio.ensure_future(ctx.viewer_id())
    await asyncio.sleep(0)
    first.cancel()
    assert await second == user_id
    assert first.cancelled()
    assert len(loads) == 1
