"""`homefeed seed`: a synthetic social graph, generated and bulk-loaded by the seed package."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import TYPE_CHECKING

from homefeed.cli.servers import migrated_servers
from homefeed.feed.config import Settings
from homefeed.feed.services import open_services

if TYPE_CHECKING:
    from homefeed.seed.engagement import EngagementReport


def add_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sd = commands.add_parser("seed", help="load a synthetic power-law social graph (password: 'password')")
    sd.add_argument("--users", type=int, required=True, help="number of users")
    sd.add_argument("--seed", type=int, default=0, help="random seed: the same seed gives the same graph")
    sd.add_argument("--posts-per-user", type=float, default=10.0, help="mean posts per user (default 10)")
    sd.add_argument("--reset", action="store_true", help="truncate users, posts, follows, ... first")
    sd.add_argument(
        "--engagement",
        type=int,
        default=0,
        metavar="VIEWERS",
        help="then simulate engagement: this many active users read feeds and like posts (default 0)",
    )
    sd.add_argument(
        "--engagement-only",
        action="store_true",
        help="keep the seeded world (same --users and --seed) and only simulate engagement on it",
    )
    sd.add_argument(
        "--engagement-rounds", type=int, default=3, help="feed reads per engagement viewer (default 3)"
    )
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
        with migrated_servers(settings) as ready:
            if not args.engagement_only:
                with RichProgress() as progress:
                    report = asyncio.run(seed_from_settings(ready, params, progress))
                print(report.summary())
            if args.engagement > 0:
                print(
                    asyncio.run(
                        _engagement(ready, args.seed, args.engagement, args.engagement_rounds)
                    ).summary()
                )
    except SeedError as exc:
        print(f"homefeed seed: {exc}", file=sys.stderr)
        return 1
    return 0


async def _engagement(settings: Settings, seed: int, viewers: int, rounds: int) -> EngagementReport:
    from homefeed.seed.engagement import active_viewers, simulate
    from homefeed.seed.preferences import Preferences

    services = await open_services(settings)
    try:
        chosen = await active_viewers(services, viewers, seed)
        return await simulate(services, Preferences(seed), chosen, rounds=rounds)
    finally:
        await services.close()
