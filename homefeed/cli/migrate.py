"""`homefeed migrate`: bring the database's schema up to date, nothing else."""

from __future__ import annotations

import argparse

from homefeed.cli.servers import migrated_servers
from homefeed.feed.config import Settings


def add_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    mig = commands.add_parser("migrate", help="apply pending database migrations")
    mig.set_defaults(run=run)


def run(settings: Settings, args: argparse.Namespace) -> int:
    with migrated_servers(settings):
        pass  # opening them migrated the schema
    return 0
