"""The `homefeed` command: serve, migrate."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys

from homefeed.feed import config
from homefeed.feed.config import Settings, SettingsError
from homefeed.feed.db import create_pool
from homefeed.feed.embedded import servers_for
from homefeed.feed.migrate import migrate

log = logging.getLogger("homefeed")


async def run_migrations(settings: Settings) -> None:
    """Apply pending migrations to the configured database."""
    assert settings.database_url
    pool = await create_pool(settings.database_url, min_size=1, max_size=1)
    try:
        applied = await migrate(pool)
        log.info("migrations: %d applied, schema up to date", len(applied))
    finally:
        await pool.close()


def cmd_migrate(settings: Settings, args: argparse.Namespace) -> int:
    with servers_for(settings) as ready:
        asyncio.run(run_migrations(ready))
    return 0


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    host = args.host or settings.host
    port = args.port if args.port is not None else settings.port
    with servers_for(settings) as ready:
        asyncio.run(run_migrations(ready))
        # Worker processes read their settings from the environment, embedded URLs included.
        assert ready.database_url and ready.redis_url
        os.environ["HOMEFEED_DATABASE_URL"] = ready.database_url
        os.environ["HOMEFEED_REDIS_URL"] = ready.redis_url
        config.jwt_secret(ready)  # create the shared secret once, before workers race for it
        log.info("serving GraphQL on http://%s:%d/graphql", host, port)
        uvicorn.run(
            "homefeed.app:app_from_env",
            factory=True,
            host=host,
            port=port,
            workers=args.workers,
            log_level=args.log_level,
            access_log=False,
        )
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="homefeed", description="A home-timeline GraphQL service.")
    sub = p.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the API (embedded servers when no URLs are set)")
    serve.add_argument("--host", default=None, help="bind address (HOMEFEED_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=None, help="port (HOMEFEED_PORT, default 8000)")
    serve.add_argument("--workers", type=int, default=1, help="API processes (default 1)")
    serve.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    serve.set_defaults(run=cmd_serve)
    mig = sub.add_parser("migrate", help="apply pending database migrations")
    mig.set_defaults(run=cmd_migrate)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `homefeed` command."""
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = config.load()
    except SettingsError as exc:
        print(f"homefeed: invalid setting: {exc}", file=sys.stderr)
        return 2
    code: int = args.run(settings, args)
    return code


if __name__ == "__main__":
    sys.exit(main())
