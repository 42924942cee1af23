"""`homefeed bench live` end to end at tiny scale: a real API process, a few subscribers, both protocols.

No timing is asserted: a tiny graph on a shared test machine says nothing about speed.
"""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import pytest

from homefeed.bench import live
from homefeed.bench.errors import BenchError
from homefeed.bench.live import heap
from homefeed.feed.config import Settings
from homefeed.feed.store.pool import create_pool
from tests.bench.conftest import seed_world

_seed = partial(seed_world, seed=3, posts_per_user=2.0)


async def test_bench_delivers_to_a_few_subscribers_and_writes_its_keys(
    settings_: Settings, tmp_path: Path
) -> None:
    await _seed(settings_, 300)
    assert settings_.database_url
    pool = await create_pool(settings_.database_url, min_size=1, max_size=1)
    try:
        modes_before = await pool.fetch("SELECT id, fanout_mode, pull_from FROM users ORDER BY id")
    finally:
        await pool.close()
    options = live.LiveOptions(
        subscribers=8,
        posts=4,
        legacy_share=0.25,
        ordinary_followers=20,
        min_users=100,
        gap=0.0,
        json_path=tmp_path / "out" / "live.json",
    )
    report = await live.run(settings_.with_(data_dir=tmp_path), options, log=lambda _: None)

    doc = json.loads((tmp_path / "out" / "live.json").read_text())
    for key in ("subscribers", "pubsub_connections", "rss_per_subscription_kb", "lag_ms", "missed"):
        assert key in doc, key
    assert set(doc["lag_ms"]) == {"ordinary", "celebrity"}
    for kind in ("ordinary", "celebrity"):
        assert set(doc["lag_ms"][kind]) >= {"p50", "p99", "max"}
    assert report.subscribers == 8 and report.failed_connections == 0
    assert report.protocols == {live.TRANSPORT_WS: 6, live.LEGACY_WS: 2}
    assert report.expected > 0 and report.missed == 0 and report.delivered == report.expected
    assert report.pubsub_connections == 1
    assert report.posts == {"ordinary": 2, "celebrity": 2}
    assert any(line.startswith("lag_ms ordinary") for line in report.lines())

    # The bench leaves nothing behind: its posts and outbox rows are gone, fan-out modes unchanged.
    pool = await create_pool(settings_.database_url, min_size=1, max_size=1)
    try:
        assert await pool.fetchval("SELECT count(*) FROM posts WHERE text LIKE 'bench live %'") == 0
        assert await pool.fetchval("SELECT count(*) FROM outbox") == 0
        assert await pool.fetch("SELECT id, fanout_mode, pull_from FROM users ORDER BY id") == modes_before
    finally:
        await pool.close()


async def test_bench_refuses_a_graph_too_small_and_says_how_to_seed(
    settings_: Settings, tmp_path: Path
) -> None:
    await _seed(settings_, 50)
    with pytest.raises(BenchError, match="homefeed seed --users 100000"):
        await live.run(settings_, live.LiveOptions(min_users=1000), log=lambda _: None)


async def test_bench_measures_the_per_subscriber_baseline_and_the_heap(
    settings_: Settings, tmp_path: Path
) -> None:
    await _seed(settings_, 300)
    options = live.LiveOptions(
        subscribers=6, posts=2, ordinary_followers=20, min_users=100, gap=0.0, per_subscriber=True
    )
    report = await live.run(settings_.with_(data_dir=tmp_path), options, log=lambda _: None)
    assert report.document == "per-subscriber"
    assert report.expected > 0 and report.missed == 0 and report.duplicates == 0
    assert report.server_cpu_us_per_delivery > 0

    assert settings_.database_url
    pool = await create_pool(settings_.database_url, min_size=1, max_size=1)
    try:
        seen = await pool.fetch("SELECT id, last_seen_at FROM users ORDER BY id LIMIT 5")
        measured = await heap.run(settings_.with_(data_dir=tmp_path), 5, log=lambda _: None)
        assert await pool.fetch("SELECT id, last_seen_at FROM users ORDER BY id LIMIT 5") == seen
    finally:
        await pool.close()
    assert measured.connected == 5 and measured.by_file_kb
    assert "registered while measured: 5" in " ".join(measured.notes)
