"""Schema migrations: numbered plain-SQL files, applied in order, each in its own transaction.

An advisory lock makes concurrent runs (two processes starting at once) take
turns; the second finds everything applied and does nothing.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from importlib import resources

import asyncpg

log = logging.getLogger(__name__)

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
# Arbitrary constant, combined with the schema name so separate schemas migrate independently.
_LOCK_NAMESPACE = 7_311_002


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


def available() -> list[Migration]:
    """Every migration shipped in homefeed/migrations, in version order."""
    found: list[Migration] = []
    for entry in resources.files("homefeed.migrations").iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text()))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"duplicate migration versions: {versions}")
    return found


async def migrate(pool: asyncpg.Pool) -> list[Migration]:
    """Apply pending migrations; return the ones applied by this call."""
    async with pool.acquire() as conn:
        return await _migrate(conn)


async def _migrate(conn: asyncpg.pool.PoolConnectionProxy) -> list[Migration]:
    applied_now: list[Migration] = []
    await conn.execute("SELECT pg_advisory_lock($1, hashtext(current_schema()))", _LOCK_NAMESPACE)
    try:
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   version integer PRIMARY KEY,
                   name text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
        for migration in available():
            if migration.version in done:
                continue
            async with conn.transaction():
                await conn.execute(migration.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                    migration.version,
                    migration.name,
                )
            log.info("applied migration %04d_%s", migration.version, migration.name)
            applied_now.append(migration)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1, hashtext(current_schema()))", _LOCK_NAMESPACE)
    return applied_now
