"""The benchmarks run once, against the single server: each is a long end-to-end run of its own, and
the cluster has its own bench (`bench fanout --redis-cluster`, tests/bench/writes/test_cluster_bench.py)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from homefeed.bench.reads import ReadOptions
from homefeed.feed.config import Settings
from homefeed.feed.store.pool import create_pool
from homefeed.seed import SeedParams
from homefeed.seed.run import seed as run_seed


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Leave out the [cluster] runs of the bench tests."""
    bench_dir = str(config.rootpath / "tests" / "bench")
    kept: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        callspec = getattr(item, "callspec", None)
        on_cluster = callspec is not None and callspec.params.get("servers") == "cluster"
        (dropped if on_cluster and str(item.path).startswith(bench_dir) else kept).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


async def seed_world(settings: Settings, users: int, *, seed: int, posts_per_user: float) -> None:
    """Seed the test's schema with a tiny world for a bench to run on."""
    assert settings.database_url
    pool = await create_pool(settings.database_url, min_size=1, max_size=2)
    try:
        await run_seed(pool, SeedParams(users=users, seed=seed, posts_per_user=posts_per_user))
    finally:
        await pool.close()


def small_read_options(out: Path, **changes: Any) -> ReadOptions:
    """A `bench read` run small enough for a test (seconds per variant, a few users), its files in `out`."""
    small = ReadOptions(
        connections=4,
        seconds=2.0,
        warmup=0.5,
        rounds=2,
        rewarm=0.3,
        users=25,
        workers=1,
        min_users=100,
        json_path=out / "read.json",
        markdown_path=out / "read.md",
        chart_path=out / "read.png",
    )
    return replace(small, **changes)
