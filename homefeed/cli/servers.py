"""The servers every command works against, opened and migrated once, in one place."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from contextlib import contextmanager

from homefeed.cli.embedded import servers_for
from homefeed.feed.config import Settings
from homefeed.feed.store.pool import create_pool
from homefeed.migrations.runner import migrate

log = logging.getLogger("homefeed")


@contextmanager
def migrated_servers(settings: Settings) -> Iterator[Settings]:
    """Settings with both URLs set (embedded servers for the missing ones), the schema up to date.

    Every command needs the schema current before it touches the database, so this is the only
    way a command reaches the servers; embedded ones stop when the block ends.
    """
    with servers_for(settings) as ready:
        asyncio.run(run_migrations(ready))
        yield ready


async def run_migrations(settings: Settings) -> None:
    """Apply pending migrations to the configured database."""
    assert settings.database_url
    pool = await create_pool(settings.database_url, min_size=1, max_size=1)
    try:
        applied = await migrate(pool)
        log.info("migrations: %d applied, schema up to date", len(applied))
    finally:
        await pool.close()
