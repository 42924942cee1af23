"""PostgreSQL connection pools."""

from __future__ import annotations

from collections.abc import Callable

import asyncpg
from asyncpg.connection import LoggedQuery


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Release a connection without asyncpg's default reset statement.

    By default every release sends `SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *;
    RESET ALL;`: one more round trip, and four statements for the server, per query. Nothing
    here leaves session state behind (locks are transaction-scoped or released in `finally`,
    settings are SET LOCAL, nothing LISTENs), and asyncpg still rolls back an open transaction.
    """


async def create_pool(
    url: str,
    *,
    min_size: int = 2,
    max_size: int = 10,
    on_query: Callable[[LoggedQuery], None] | None = None,
) -> asyncpg.Pool:
    """A pool for `url`; extra URL query parameters become server settings (asyncpg).

    `on_query` sees every statement each connection runs (tests count round trips with it).
    """

    async def init(conn: asyncpg.Connection) -> None:
        if on_query is not None:
            conn.add_query_logger(on_query)

    pool = await asyncpg.create_pool(
        url,
        min_size=min_size,
        max_size=max_size,
        init=init,
        reset=_keep_session,
        server_settings={"application_name": "homefeed"},
    )
    assert pool is not None
    return pool
