"""`homefeed rank train`: fit the ranking model from logged impressions and install its file.

Every API process watches the model file (HOMEFEED_RANK_MODEL) and serves the new model within
seconds of it changing; until a file exists they rank with the heuristic.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from homefeed.cli.servers import migrated_servers
from homefeed.feed import config
from homefeed.feed.config import Settings
from homefeed.feed.ranking.training import NotEnoughData, TrainReport, train
from homefeed.feed.store.pool import create_pool


def add_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    rank = commands.add_parser("rank", help="the RANKED feed's model")
    actions = rank.add_subparsers(dest="action", required=True)
    fit = actions.add_parser("train", help="fit the model on logged impressions and install it")
    fit.add_argument("--days", type=int, default=14, help="impressions of the last N days (default 14)")
    fit.add_argument("--limit", type=int, default=2_000_000, help="newest N impressions at most")
    fit.set_defaults(run=run)


def run(settings: Settings, args: argparse.Namespace) -> int:
    with migrated_servers(settings) as ready:
        return asyncio.run(_train(ready, args.days, args.limit))


async def _train(settings: Settings, days: int, limit: int) -> int:
    assert settings.database_url
    pool = await create_pool(settings.database_url, min_size=1, max_size=1)
    try:
        report = await train(pool, config.rank_model_path(settings), days=days, limit=limit)
    except NotEnoughData as exc:
        print(f"homefeed rank train: {exc}", file=sys.stderr)
        return 1
    finally:
        await pool.close()
    print(describe(report))
    return 0


def describe(report: TrainReport) -> str:
    """The report as printed."""

    def fmt(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.3f}"

    lines = [
        f"model {report.version} written to {report.path}",
        f"impressions: {report.rows} ({report.positives} liked), {report.held_out_rows} of held-out viewers",
        f"held-out AUC: model {fmt(report.auc_model)}, heuristic {fmt(report.auc_heuristic)}",
        "coefficients (standardised): "
        + ", ".join(f"{name} {value:+.3f}" for name, value in report.coefficients.items()),
    ]
    return "\n".join(lines)
