"""`homefeed bench read` end to end at tiny scale: three real API process trees, a real load generator.

No timing is asserted: a tiny graph on a shared test machine says nothing about speed.
"""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import pytest

from homefeed.bench import reads
from homefeed.bench.errors import BenchError
from homefeed.feed.config import Settings
from homefeed.feed.store.pool import create_pool
from tests.bench.conftest import seed_world, small_read_options

_seed = partial(seed_world, seed=5, posts_per_user=4.0)


async def test_bench_measures_hybrid_pull_and_baseline_and_writes_its_files(
    settings_: Settings, tmp_path: Path
) -> None:
    await _seed(settings_, 300)
    out = tmp_path / "out"
    options = small_read_options(out)
    report = await reads.run(settings_.with_(data_dir=tmp_path), options, log=lambda _: None)
    written = reads.write_outputs(report, options)

    assert written == [out / "read.json", out / "read.md", out / "read.png"]
    doc = json.loads((out / "read.json").read_text())
    for variant in reads.VARIANTS:
        assert set(doc[variant]) >= {"rps", "p50_ms", "p90_ms", "p99_ms", "max_ms"}, variant
        result = report.results[variant]
        # Every answer was a full, error-free page: the baseline found each page the cursors led to,
        # and touched no storage (its stand-ins raise, which would show up as errors).
        assert result.requests > 0 and result.errors == 0, (variant, result.error_sample)
        assert result.first_pages > 0
        assert result.p50_ms <= result.p90_ms <= result.p99_ms <= result.max_ms
        assert result.loadgen_cpu_s > 0
    assert sum(report.results[v].deeper_pages for v in reads.VARIANTS) > 0
    # Celebrities were on the measured path, and the stores' CPU was counted where they work.
    assert report.celebrities is not None and report.pulled_authors >= 1
    assert doc["run"]["celebrities"]["pulled_authors"] == report.pulled_authors
    print(
        {v: (r.server_cpu_s, r.postgres_cpu_s, r.redis_cpu_s, r.seconds) for v, r in report.results.items()}
    )
    # Measured (not NaN), but a short run's backends may stay under one clock tick of CPU.
    assert all(report.results[v].postgres_cpu_s >= 0 for v in ("hybrid", "pull"))
    assert report.results["baseline"].postgres_cpu_s == 0  # it touches no store
    assert report.results["baseline-persisted"].postgres_cpu_s == 0
    assert all(doc[v]["total_cpu_ms_per_request"] > 0 for v in ("hybrid", "pull"))
    assert "celebrities: threshold" in report.lines()[0]
    # The run put the world back: nobody it pulled is pulled after it (nobody posted meanwhile).
    assert settings_.database_url
    pool = await create_pool(settings_.database_url, min_size=1, max_size=1)
    try:
        assert await pool.fetchval("SELECT count(*) FROM users WHERE fanout_mode <> 0") == 0
    finally:
        await pool.close()
    # Measured in turn, each round starting with the next variant: drift meets them all alike.
    variants = list(reads.VARIANTS)
    assert doc["run"]["slices"] == [*variants, *variants[1:], variants[0]]
    assert set(doc["run"]["ratios"]) == {
        "hybrid_p99_over_pull_p99",
        "hybrid_rps_over_pull_rps",
        "hybrid_rps_over_baseline_rps",
        "persisted_rps_over_hybrid_rps",
        "persisted_p99_over_hybrid_p99",
        "persisted_api_cpu_over_hybrid_api_cpu",
        "persisted_rps_over_baseline_persisted_rps",
        "persisted_api_cpu_over_persisted_planned_api_cpu",
        "persisted_rps_over_persisted_planned_rps",
        "ranked_first_p99_over_hybrid_first_p99",
        "ranked_deeper_p99_over_hybrid_deeper_p99",
    }
    # RANKED pages were read, first and deeper, each split timed.
    ranked = report.results["ranked"]
    assert ranked.first_pages > 0 and ranked.deeper_pages > 0
    assert ranked.p99_first_ms > 0 and ranked.p99_deeper_ms > 0
    table = (out / "read.md").read_text()
    assert all(f"| {v} |" in table for v in reads.VARIANTS)
    assert (out / "read.png").read_bytes().startswith(b"\x89PNG")
    assert any(line.startswith("target") for line in report.lines())


async def test_bench_refuses_a_graph_too_small_and_says_how_to_seed(settings_: Settings) -> None:
    await _seed(settings_, 50)
    with pytest.raises(BenchError, match="homefeed seed --users 100000"):
        await reads.run(settings_, reads.ReadOptions(min_users=1000), log=lambda _: None)
