"""`homefeed bench fanout --redis-cluster` on a tiny seeded graph: every side (configured Redis, Valkey
single, Valkey with a replica, cluster) measured in one run, every post delivered on each, both ratios
and each server group's cost in the JSON. No timing is asserted."""

from __future__ import annotations

import json
from pathlib import Path

from homefeed.bench import writes
from homefeed.bench.writes import cluster
from homefeed.feed.config import Settings
from homefeed.feed.store.pool import create_pool
from homefeed.seed import SeedParams
from homefeed.seed.run import seed


async def test_the_cluster_bench_measures_every_side_and_delivers_on_each(
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
        report.valkey_writes_per_s,
        report.valkey_bulkwriter_writes_per_s,
        report.replicated_writes_per_s,
        report.replicated_bulkwriter_writes_per_s,
    ):
        assert figure > 0
    # The cluster's ratio against the same engine, beside the one against the configured Redis.
    assert report.valkey_ratio == report.cluster_writes_per_s / report.valkey_writes_per_s
    assert report.ratio == report.cluster_writes_per_s / report.single_writes_per_s
    # Each group of servers the bench owns served at least one command per timeline write (an
    # APPEND; the small timelines' trims add more) and spent CPU on it; the masters with a
    # replica fed the replication stream, and the replicas are not charged for it again.
    owned = [
        "valkey",
        "valkey_replica master",
        "valkey_replica replica",
        "cluster masters",
        "cluster replicas",
    ]
    assert set(report.server) == {"redis", *owned}
    for name in owned:
        assert report.server[name].commands >= 0.99 and report.server[name].cpu_us > 0, name
    for master in ("valkey_replica master", "cluster masters"):
        assert report.server[master].repl_bytes > 8, master  # at least the 8-byte entry
    for replica in ("valkey_replica replica", "cluster replicas"):
        assert report.server[replica].repl_bytes == 0, replica
    # The last post of each author reached sampled followers on both sides.
    assert not [n for n in report.notes if "lack" in n], report.notes
    doc = json.loads((tmp_path / "c.json").read_text())
    assert doc["ratio"] == report.ratio and doc["valkey_ratio"] == report.valkey_ratio
    assert doc["server"]["cluster masters"]["cpu_us"] == report.server["cluster masters"].cpu_us
    text = "\n".join(report.lines())
    assert "Valkey single (same engine)" in text and "configured Redis" in text
