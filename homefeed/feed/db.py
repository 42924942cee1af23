"""PostgreSQL connection pools."""

from __future__ import annotations

import asyncpg


async def create_pool(url: str, *, min_size: int = 2, max_size: int = 10) -> asyncpg.Pool:
    """A pool for `url`. Extra query parameters of the URL become server settings (asyncpg)."""
    pool = await asyncpg.create_pool(
        url,
        min_size=min_size,
        max_size=max_size,
        # Statements are prepared once per connection and reused; the cache keeps the hot ones.
        statement_cache_size=256,
        server_settings={"application_name": "homefeed"},
    )
    assert pool is not None
    return pool
