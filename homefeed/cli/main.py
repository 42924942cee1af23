"""The `homefeed` command: its parser, each command's module, and settings errors."""

from __future__ import annotations

import argparse
import logging
import sys

from homefeed.cli import bench, capacity, jobs, migrate, rank, seeding, serve, worker
from homefeed.feed import config
from homefeed.feed.config import SettingsError


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="homefeed", description="A home-timeline GraphQL service.")
    commands = p.add_subparsers(dest="command", required=True)
    for command in (serve, worker, jobs, migrate, seeding, rank, bench, capacity):
        command.add_command(commands)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `homefeed` command."""
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = config.load()
        # Settings found only while starting (the secret kept in the data dir) fail the same way.
        code: int = args.run(settings, args)
    except SettingsError as exc:
        print(f"homefeed: invalid setting: {exc}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())
