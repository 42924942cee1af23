"""The migrated schema is one a sharded store (Citus) can enforce, table by table, per the plan.

Read from pg_catalog: every table has a place in homefeed/feed/store/distribution.py; every
unique or primary key of a distributed table holds its distribution column; every foreign
key joins co-located tables on their distribution columns.
"""

from __future__ import annotations

import asyncpg
import pytest

from homefeed.feed.config import Settings
from homefeed.feed.store.distribution import Kind, placement

_TABLES = """
    SELECT c.oid, c.relname FROM pg_class c
    WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind IN ('r', 'p')
    ORDER BY c.relname"""

# Key columns of unique indexes (primary keys and unique constraints included); an expression
# column has no name (attnum 0), so it never counts as the distribution column.
_UNIQUE_KEYS = """
    SELECT i.indexrelid::regclass::text AS index, t.relname AS tbl,
           array(SELECT a.attname FROM unnest(i.indkey[:i.indnkeyatts - 1]) AS k(n)
                 JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.n)::text[] AS cols
    FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid
    WHERE i.indisunique AND t.relnamespace = current_schema()::regnamespace
    ORDER BY 1"""

_FOREIGN_KEYS = """
    SELECT c.conname, src.relname AS src, dst.relname AS dst,
           array(SELECT a.attname FROM unnest(c.conkey) WITH ORDINALITY AS k(n, i)
                 JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n ORDER BY k.i)::text[]
               AS src_cols,
           array(SELECT a.attname FROM unnest(c.confkey) WITH ORDINALITY AS k(n, i)
                 JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.n ORDER BY k.i)::text[]
               AS dst_cols
    FROM pg_constraint c
    JOIN pg_class src ON src.oid = c.conrelid
    JOIN pg_class dst ON dst.oid = c.confrelid
    WHERE c.contype = 'f' AND src.relnamespace = current_schema()::regnamespace
    ORDER BY 1"""


async def violations(conn: asyncpg.Connection) -> list[str]:
    """What a sharded store would refuse in the current schema, one line each."""
    found: list[str] = []
    for row in await conn.fetch(_TABLES):
        plan = placement(row["relname"])
        if plan is None:
            found.append(f"table {row['relname']}: no place in the distribution plan")
            continue
        if plan.kind is Kind.DISTRIBUTED:
            exists = await conn.fetchval(
                "SELECT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = $1 AND attname = $2"
                " AND NOT attisdropped)",
                row["oid"],
                plan.column,
            )
            if not exists:
                found.append(f"table {row['relname']}: no distribution column {plan.column}")
    for key in await conn.fetch(_UNIQUE_KEYS):
        plan = placement(key["tbl"])
        if plan is not None and plan.kind is Kind.DISTRIBUTED and plan.column not in key["cols"]:
            found.append(
                f"unique key {key['index']} ({', '.join(key['cols']) or 'expression'}) lacks {plan.column}"
            )
    for fk in await conn.fetch(_FOREIGN_KEYS):
        src, dst = placement(fk["src"]), placement(fk["dst"])
        colocated = (
            src is not None
            and dst is not None
            and src.kind is Kind.DISTRIBUTED
            and dst.kind is Kind.DISTRIBUTED
            and src.group == dst.group
            and (src.column, dst.column) in zip(fk["src_cols"], fk["dst_cols"], strict=True)
        )
        if not colocated:
            found.append(f"foreign key {fk['conname']} ({fk['src']} -> {fk['dst']}) crosses shards")
    return found


async def test_the_migrated_schema_is_shard_safe(settings_: Settings) -> None:
    conn = await asyncpg.connect(settings_.database_url)
    try:
        assert await violations(conn) == []
    finally:
        await conn.close()


@pytest.mark.parametrize(
    ("ddl", "expected"),
    [
        (
            "CREATE UNIQUE INDEX posts_id_again ON posts (id)",
            "unique key posts_id_again (id) lacks author_id",
        ),
        (
            "CREATE UNIQUE INDEX users_handle_again ON users (lower(handle))",
            "unique key users_handle_again (expression) lacks id",
        ),
        (
            "ALTER TABLE follows ADD CONSTRAINT followee_fk FOREIGN KEY (followee_id) REFERENCES users (id)",
            "foreign key followee_fk (follows -> users) crosses shards",
        ),
        (
            "ALTER TABLE handles ADD CONSTRAINT handle_user_fk FOREIGN KEY (user_id) REFERENCES users (id)",
            "foreign key handle_user_fk (handles -> users) crosses shards",
        ),
        (
            "CREATE TABLE unplanned (id bigint PRIMARY KEY)",
            "table unplanned: no place in the distribution plan",
        ),
    ],
)
async def test_the_check_catches_what_a_sharded_store_refuses(
    settings_: Settings, ddl: str, expected: str
) -> None:
    conn = await asyncpg.connect(settings_.database_url)
    try:
        await conn.execute(ddl)
        assert await violations(conn) == [expected]
    finally:
        await conn.close()
