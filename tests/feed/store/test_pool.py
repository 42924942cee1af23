"""Lanes: the read path's held PostgreSQL connections."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import cast

import asyncpg
import pytest

from homefeed.feed.config import Settings
from homefeed.feed.redis_client import open_redis
from homefeed.feed.services import build_services
from homefeed.feed.store.pool import Lanes, create_pool, lane_share


@asynccontextmanager
async def lanes_on(
    settings_: Settings, max_size: int, size: int
) -> AsyncIterator[tuple[asyncpg.Pool, Lanes]]:
    """A pool of `max_size` for this test and `size` lanes over it, both closed afterwards."""
    pool = await create_pool(settings_.database_url or "", min_size=1, max_size=max_size)
    lanes = Lanes(pool, size=size)
    try:
        yield pool, lanes
    finally:
        await lanes.close()
        await pool.close()


async def test_statements_run_on_at_most_size_connections(settings_: Settings) -> None:
    async with lanes_on(settings_, 6, 2) as (_, lanes):
        rows = await asyncio.gather(
            *(lanes.fetch("SELECT $1::int AS n, pg_backend_pid() AS pid", i) for i in range(50))
        )
        assert [r[0]["n"] for r in rows] == list(range(50))
        assert len({r[0]["pid"] for r in rows}) <= 2


async def test_a_refused_statement_keeps_its_connection(settings_: Settings) -> None:
    async with lanes_on(settings_, 3, 1) as (_, lanes):
        pid = (await lanes.fetch("SELECT pg_backend_pid() AS pid"))[0]["pid"]
        with pytest.raises(asyncpg.PostgresError):
            await lanes.fetch("SELECT 1/0")
        assert (await lanes.fetch("SELECT pg_backend_pid() AS pid"))[0]["pid"] == pid


async def test_a_cancelled_statement_gives_its_connection_up_and_queued_reads_go_on(
    settings_: Settings,
) -> None:
    async with lanes_on(settings_, 3, 1) as (pool, lanes):
        pid = (await lanes.fetch("SELECT pg_backend_pid() AS pid"))[0]["pid"]
        slow = asyncio.ensure_future(lanes.fetch("SELECT pg_sleep(5)"))
        await asyncio.sleep(0.1)
        queued = asyncio.ensure_future(lanes.fetch("SELECT pg_backend_pid() AS pid"))
        await asyncio.sleep(0.05)
        slow.cancel()
        with pytest.raises(asyncio.CancelledError):
            await slow
        row = (await asyncio.wait_for(queued, 5))[0]
        assert row["pid"] != pid  # the interrupted connection was not reused
        assert (await lanes.fetch("SELECT 2 AS n"))[0]["n"] == 2
        # The abandoned backend sleeps on (holding a snapshot, which would stop a later test's
        # VACUUM from marking pages all-visible): end it.
        await pool.execute("SELECT pg_terminate_backend($1)", pid)
        for _ in range(100):
            if not await pool.fetchval("SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid):
                break
            await asyncio.sleep(0.05)


async def test_close_gives_the_connections_back_to_the_pool(settings_: Settings) -> None:
    pool = await create_pool(settings_.database_url or "", min_size=5, max_size=5)
    lanes = Lanes(pool, size=2)
    await asyncio.gather(*(lanes.fetch("SELECT pg_sleep(0.05)") for _ in range(4)))
    assert pool.get_idle_size() == 3
    await lanes.close()
    assert pool.get_idle_size() == 5
    await asyncio.wait_for(pool.close(), 5)


async def test_lanes_leave_most_of_a_small_pool_to_everything_else(settings_: Settings) -> None:
    for max_size, lanes_held in ((1, 0), (2, 0), (3, 1), (10, 4)):
        pool = await create_pool(settings_.database_url or "", min_size=1, max_size=max_size)
        lanes = Lanes(pool)
        try:
            await asyncio.gather(*(lanes.fetch("SELECT pg_sleep(0.02)") for _ in range(8)))
            # The rest of the pool is still there for other statements.
            assert await asyncio.wait_for(pool.fetchval("SELECT 7"), 5) == 7
            assert pool.get_size() - pool.get_idle_size() == lanes_held
        finally:
            await lanes.close()
            await pool.close()


async def test_session_settings_hold_on_the_lanes_only_and_are_reset_on_close(settings_: Settings) -> None:
    pool = await create_pool(settings_.database_url or "", min_size=3, max_size=3)
    lanes = Lanes(pool, size=1, session={"plan_cache_mode": "force_generic_plan"})
    try:
        assert (await lanes.fetch("SHOW plan_cache_mode"))[0][0] == "force_generic_plan"
        await lanes.close()
        held = [await pool.acquire() for _ in range(3)]
        assert {await c.fetchval("SHOW plan_cache_mode") for c in held} == {"auto"}
        for c in held:
            await pool.release(c)
    finally:
        await pool.close()


def test_session_setting_names_are_checked() -> None:
    with pytest.raises(ValueError, match="setting name"):
        Lanes(cast(asyncpg.Pool, _FakePool()), session={"x; DROP TABLE users": "1"})


class _FakePool:
    def get_max_size(self) -> int:
        return 10


@pytest.mark.parametrize("max_size", [1, 2, 3, 5, 8, 10, 40])
async def test_an_engine_holds_at_most_its_share_of_the_pool(settings_: Settings, max_size: int) -> None:
    pool = await create_pool(settings_.database_url or "", min_size=1, max_size=max_size)
    services = build_services(settings_, pool, await open_redis(settings_.redis_url or ""))
    try:
        feeds = services.feeds
        assert feeds.lanes.size + feeds.visible_reads.connections <= lane_share(pool) == (max_size - 1) // 2
        if max_size >= 3:
            assert feeds.visible_reads.connections == 1  # the hot read keeps its own lane
    finally:
        await services.close()
