"""`homefeed bench read --replica` end to end at tiny scale, on an embedded primary and its standby.

No timing is asserted: a tiny graph on a shared test machine says nothing about speed.
"""

from __future__ import annotations

import asyncio
import json
import math
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from homefeed.bench import reads
from homefeed.bench.errors import BenchError
from homefeed.feed.config import Settings
from homefeed.feed.store.pool import create_pool
from homefeed.migrations.runner import migrate
from homefeed.seed import SeedParams
from homefeed.seed.run import seed
from tests.bench.conftest import small_read_options
from tests.conftest import with_search_path
from tests.standby import Pair


@pytest.fixture
async def on_pair(pair: Pair, servers: Settings, tmp_path: Path) -> AsyncIterator[Settings]:
    """Settings over a fresh schema of the pair's primary, seeded, with the standby as replica."""
    schema = f"b_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(pair.primary_url)
    await admin.execute(f"CREATE SCHEMA {schema}")
    await admin.close()
    settings = servers.with_(
        database_url=with_search_path(pair.primary_url, schema),
        database_replica_urls=(with_search_path(pair.standby_url, schema),),
        redis_prefix=schema,
        jwt_secret="test-secret-" + "x" * 20,
        data_dir=tmp_path,
    )
    assert settings.database_url
    pool = await create_pool(settings.database_url, min_size=1, max_size=2)
    try:
        await migrate(pool)
        await seed(pool, SeedParams(users=300, seed=5, posts_per_user=4.0))
        target = await pool.fetchval("SELECT pg_current_wal_lsn()")
    finally:
        await pool.close()
    standby = await asyncpg.connect(pair.standby_url)
    try:
        for _ in range(600):  # the seed replayed, so the replica side is fit from its first read
            if await standby.fetchval("SELECT pg_last_wal_replay_lsn() >= $1", target):
                break
            await asyncio.sleep(0.05)
    finally:
        await standby.close()
    yield settings
    admin = await asyncpg.connect(pair.primary_url)
    await admin.execute(f"DROP SCHEMA {schema} CASCADE")
    await admin.close()


async def test_one_run_measures_hybrid_with_and_without_the_replica_and_its_lag(
    on_pair: Settings, tmp_path: Path
) -> None:
    options = small_read_options(tmp_path / "out", seconds=3.0, variants=("hybrid",), replica=True)
    report = await reads.run(on_pair, options, log=lambda _: None)
    reads.write_outputs(report, options)

    assert list(report.results) == ["hybrid", "hybrid-replica"]
    doc = json.loads((tmp_path / "out" / "read.json").read_text())
    # Measured in turn, each round starting with the next variant.
    assert doc["run"]["slices"] == ["hybrid", "hybrid-replica", "hybrid-replica", "hybrid"]
    for name, result in report.results.items():
        assert result.requests > 0 and result.errors == 0, (name, result.error_sample)
        figures = result.replicas
        assert figures is not None and figures.samples > 0, name
        assert 0 <= figures.lag_p50_ms <= figures.lag_p99_ms <= figures.lag_max_ms < math.inf
        assert figures.lag_max_bytes >= 0
        assert doc[name]["replicas"]["samples"] == figures.samples
    # The replica side's server read from the standby (nothing else reads there but the probes).
    assert sum(r.replicas.replica_blocks for r in report.results.values() if r.replicas) > 0
    ratios = doc["run"]["ratios"]
    assert set(ratios) >= {"hybrid_replica_p99_over_hybrid_p99", "hybrid_replica_rps_over_hybrid_rps"}
    lines = report.lines()
    assert any(line.startswith("replicas during hybrid-replica: replay lag p50") for line in lines)
    assert any(line.startswith("hybrid with replicas / without (same run): p99") for line in lines)
    assert "| hybrid-replica |" in (tmp_path / "out" / "read.md").read_text()


async def test_replica_variants_without_replicas_configured_are_refused(settings_: Settings) -> None:
    alone = settings_.with_(database_replica_urls=())
    options = reads.ReadOptions(min_users=100, variants=("hybrid",), replica=True)
    with pytest.raises(BenchError, match="HOMEFEED_DATABASE_REPLICA_URLS"):
        await reads.run(alone, options, log=lambda _: None)
