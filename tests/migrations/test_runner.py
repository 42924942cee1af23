"""Migrations: applied once, idempotent, safe from two processes at once."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from homefeed.feed.config import Settings
from homefeed.feed.store.pool import create_pool
from homefeed.migrations.runner import available, migrate
from tests.conftest import with_search_path


@pytest.fixture
async def empty_schema_url(servers: Settings) -> AsyncIterator[str]:
    """A URL whose search_path is a fresh, unmigrated schema."""
    assert servers.database_url
    name = f"m_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(servers.database_url)
    await conn.execute(f"CREATE SCHEMA {name}")
    try:
        yield with_search_path(servers.database_url, name)
    finally:
        await conn.execute(f"DROP SCHEMA {name} CASCADE")
        await conn.close()


def test_versions_are_numbered_in_order() -> None:
    versions = [m.version for m in available()]
    assert versions and versions == sorted(set(versions))
    assert versions[0] == 1


async def test_second_run_applies_nothing(empty_schema_url: str) -> None:
    pool = await create_pool(empty_schema_url, min_size=1, max_size=1)
    try:
        first = await migrate(pool)
        assert [m.version for m in first] == [m.version for m in available()]
        assert await migrate(pool) == []
        recorded = await pool.fetch("SELECT version FROM schema_migrations ORDER BY version")
        assert [r["version"] for r in recorded] == [m.version for m in available()]
    finally:
        await pool.close()


async def test_two_concurrent_runs_apply_each_migration_once(empty_schema_url: str) -> None:
    pools = [await create_pool(empty_schema_url, min_size=1, max_size=1) for _ in range(2)]
    try:
        results = await asyncio.gather(*(migrate(p) for p in pools))
        applied = sorted(m.version for run in results for m in run)
        assert applied == [m.version for m in available()]
        # One run did all the work; the other waited on the lock and found nothing to do.
        assert sorted(len(run) for run in results) == [0, len(available())]
        recorded = await pools[0].fetch("SELECT version FROM schema_migrations")
        assert sorted(r["version"] for r in recorded) == applied
        assert await pools[0].fetchval("SELECT count(*) FROM users") == 0
    finally:
        for p in pools:
            await p.close()
