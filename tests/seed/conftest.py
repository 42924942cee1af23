"""Fixtures of the seeding tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from homefeed.feed.config import Settings
from homefeed.feed.store.pool import create_pool


@pytest.fixture
async def pool(settings_: Settings) -> AsyncIterator[asyncpg.Pool]:
    """A pool as small as seeding's own."""
    assert settings_.database_url
    opened = await create_pool(settings_.database_url, min_size=1, max_size=2)
    try:
        yield opened
    finally:
        await opened.close()
