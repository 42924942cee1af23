"""`homefeed seed`: a synthetic social graph, generated and bulk-loaded by the seed package."""

from __future__ import annotations

import argparse
import asyncio
import sys

from homefeed.cli.servers import migrated_servers
from homefeed.feed.config import Settings


def add_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sd = commands.add_parser("seed", help="load a synthetic power-law social graph (password: 'password')")
    sd.add_argument("--users", type=int, required=True, help="number of users")
    sd.add_argument("--seed", type=int, default=0, help="random seed: the same seed gives the same graph")
    sd.add_argument("--posts-per-user", type=float, default=10.0, help="mean posts per user (default 10)")
    sd.add_argument("--reset", action="store_true", help="truncate users, posts, follows, ... first")
    sd.set_defaults(run=run)


def run(settings: Settings, args: argparse.Namespace) -> int:
    # Imported here: numpy and rich load only for this command.
    from homefeed.seed import RichProgress, SeedError, SeedParams, seed_from_settings

    params = SeedParams(
        users=args.users,
        seed=args.seed,
        posts_per_user=args.posts_per_user,
        reset=args.reset,
        active_days=settings.active_days,
    )
    try:
        params.check()
        with migrated_servers(settings) as ready, RichProgress() as progress:
            report = asyncio.run(seed_from_settings(ready, params, progress))
    except SeedError as exc:
        print(f"homefeed seed: {exc}", file=sys.stderr)
        return 1
    print(report.summary())
    return 0
