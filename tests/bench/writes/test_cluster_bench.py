"""`homefeed bench fanout --redis-cluster` on a tiny seeded graph: both sides measured in one run, every
post delivered on both, the JSON written, the cluster it started stopped. No timing is asserted."""

from __future__ import annotations

import json
from pathlib import Path

from homefeed.bench import writes
from homefeed.bench.writes import cluster
from homefeed.feed.config import Settings
from homefeed.feed.store.pool import create_pool
from homefeed.seed import SeedParams
from homefeed.seed.run import seed


async def test_the_cluster_bench_measures_both_sides_and_delivers_on_both(
    settings_: Settings, tmp_path: Path
) -> None:
    settings = settings_.with_(timeline_size=20)
    assert settings.database_url
    pool = await create_pool(settings.database_url, min_size=1, max_size=2)
    try:
        await seed(pool, SeedParams(users=400, seed=3, posts_per_user=8.0))
    finally:
        await pool.close()
    options = writes.FanoutOptions(
        seconds=0.05, fanout_keys=150, min_users=100, json_path=tmp_path / "c.json"
    )
    lines: list[str] = []
    report = await cluster.run(settings, options, log=lines.append)

    assert report.masters == 3 and report.rounds >= 3 and report.writes_per_round > 0
    for figure in (
        report.single_writes_per_s,
        report.cluster_writes_per_s,
        report.single_bulkwriter_writes_per_s,
        report.cluster_bulkwriter_writes_per_s,
        report.cluster_redispy_writes_per_s,
    ):
        assert figure > 0
    # The last post of each author reached sampled followers on both sides.
    assert not [n for n in report.notes if "lack" in n], report.notes
    doc = json.loads((tmp_path / "c.json").read_text())
    assert doc["ratio"] == report.ratio
    assert any("ratio" in line for line in report.lines())
