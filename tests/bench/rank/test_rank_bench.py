"""`homefeed bench rank` end to end on a tiny world seeded with engagement (no figure asserted)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from homefeed.bench import rank
from homefeed.bench.errors import BenchError
from homefeed.feed.config import Settings
from homefeed.feed.services import open_services
from homefeed.seed import SeedParams
from homefeed.seed.engagement import active_viewers, simulate
from homefeed.seed.preferences import Preferences
from homefeed.seed.run import seed


async def test_bench_rank_reports_every_figure(settings_: Settings, tmp_path: Path) -> None:
    settings = settings_.with_(data_dir=tmp_path)
    services = await open_services(settings)
    try:
        await seed(services.pool, SeedParams(users=200, seed=4, posts_per_user=8.0))
        with pytest.raises(BenchError, match="engagement"):
            await rank.run(settings, rank.RankOptions(min_users=100, seed=4), log=lambda _: None)
        viewers = await active_viewers(services, 120, seed=4)
        await simulate(services, Preferences(4), viewers, rounds=2)
    finally:
        await services.close()
    options = rank.RankOptions(viewers=50, seed=4, min_users=100, json_path=tmp_path / "rank.json")
    report = await rank.run(settings, options, log=lambda _: None)
    doc = json.loads((tmp_path / "rank.json").read_text())
    assert doc["viewers_evaluated"] == report.viewers_evaluated > 0
    for key in ("ndcg_latest", "ndcg_heuristic", "ndcg_ranked"):
        assert 0 < doc[key] <= 1
    assert report.diversity_compliant_orders == 1.0
    assert report.slot_coverage in (None, 1.0)
    assert report.model_us_per_candidate > 0
    assert report.lines()
    # The served model file is untouched: the bench fits into its own.
    assert not (tmp_path / "rank_model.json").exists()


async def test_bench_rank_refuses_a_small_world(settings_: Settings, tmp_path: Path) -> None:
    with pytest.raises(BenchError, match="seed at least"):
        await rank.run(settings_.with_(data_dir=tmp_path), rank.RankOptions(), log=lambda _: None)
