"""`homefeed bench fanout` end to end on a tiny seeded graph: it runs, cleans up, and writes its JSON.

No timing is asserted: a tiny graph on a shared test server says nothing about speed.
"""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import pytest
from redis.asyncio import Redis

from homefeed.bench import writes
from homefeed.bench.errors import BenchError
from homefeed.feed.config import Settings
from homefeed.feed.store.pool import create_pool
from tests.bench.conftest import seed_world

_seed = partial(seed_world, seed=3, posts_per_user=8.0)


def _options(tmp_path: Path, **more: object) -> writes.FanoutOptions:
    base: dict[str, object] = {
        "posts": 30,
        "seconds": 0.05,
        "fanout_keys": 150,
        "cold_users": 100,
        "memory_keys": 100,
        "lag_followers": 30,
        "min_users": 100,
        "json_path": tmp_path / "out" / "fanout.json",
    }
    base.update(more)
    return writes.FanoutOptions(**base)  # type: ignore[arg-type]


async def test_bench_runs_on_a_tiny_graph_and_writes_the_contract_keys(
    settings_: Settings, tmp_path: Path
) -> None:
    # Small timelines, so the tiny graph fills them and trims happen.
    settings = settings_.with_(timeline_size=20)
    await _seed(settings, 400)
    report = await writes.run(settings, _options(tmp_path), log=lambda _: None)

    doc = json.loads((tmp_path / "out" / "fanout.json").read_text())
    for key in writes.CONTRACT_KEYS:
        assert isinstance(doc[key], float), key
    assert report.writes_per_s > 0 and report.baseline_writes_per_s > 0
    assert report.bulkwriter_writes_per_s > 0
    assert report.visible_lag is not None and report.visible_lag.n >= 30
    assert report.cold_rebuild is not None and report.cold_rebuild.n >= 100
    assert report.celebrities is not None and report.celebrities.pulled
    assert doc["celebrities"]["pulled_authors"] == len(report.celebrities.pulled)
    assert report.memory_timelines > 0 and report.sampled_bytes_per_entry > 0
    # The memory figure covers one whole rewrite/append cycle (slack 10 past a bound of 20: the
    # eleventh append trims), and counts the allocation appends grow, not just the rewritten string.
    assert report.memory_cycle_rounds == 11
    assert report.bytes_per_entry > report.rewritten_bytes_per_entry > 0
    assert report.memory_cycle_peak_bytes_per_entry >= report.bytes_per_entry
    assert not [n for n in report.notes if "lack" in n or "not visible" in n], report.notes
    assert any(line.startswith("writes_per_s") for line in report.lines())

    # The bench leaves nothing behind: its posts, outbox rows and timelines are gone.
    assert settings.database_url and settings.redis_url
    pool = await create_pool(settings.database_url, min_size=1, max_size=1)
    try:
        assert await pool.fetchval("SELECT count(*) FROM posts WHERE text LIKE 'bench %'") == 0
        assert await pool.fetchval("SELECT count(*) FROM outbox") == 0
    finally:
        await pool.close()
    redis = Redis.from_url(settings.redis_url)
    try:
        assert [k async for k in redis.scan_iter(match=f"{settings.redis_prefix}-bench:*")] == []
    finally:
        await redis.aclose()


async def test_bench_refuses_a_graph_too_small_and_says_how_to_seed(
    settings_: Settings, tmp_path: Path
) -> None:
    await _seed(settings_, 50)
    with pytest.raises(BenchError, match="homefeed seed --users 100000"):
        await writes.run(settings_, _options(tmp_path, min_users=1000), log=lambda _: None)
