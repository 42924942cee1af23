"""The `homefeed` command: serve, migrate, seed, worker, bench."""

from __future__ import annotations

import argparse
import asyncio
import logging
import multiprocessing
import os
import signal
import sys
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Protocol, TypeVar

from homefeed.cli.embedded import servers_for
from homefeed.feed import config
from homefeed.feed.config import Settings, SettingsError
from homefeed.feed.services import open_services
from homefeed.feed.store.pool import create_pool
from homefeed.migrations.runner import migrate

if TYPE_CHECKING:
    from homefeed.cli.balance import Balance

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


async def _work(settings: Settings) -> None:
    # The CLI is the composition root: it alone may reach into the worker room.
    from homefeed.workers.fanout_worker import FanoutWorker

    services = await open_services(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await FanoutWorker(services).run_forever(stop)
    finally:
        await services.close()


def _work_in_process(settings: Settings) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(_work(settings))


def cmd_worker(settings: Settings, args: argparse.Namespace) -> int:
    with servers_for(settings) as ready:
        asyncio.run(run_migrations(ready))
        log.info("fan-out: %d worker process(es)", args.processes)
        if args.processes == 1:
            _work_in_process(ready)
            return 0
        ctx = multiprocessing.get_context("spawn")
        procs = [ctx.Process(target=_work_in_process, args=(ready,)) for _ in range(args.processes)]
        for p in procs:
            p.start()
        try:
            for p in procs:
                p.join()
        except KeyboardInterrupt:
            for p in procs:
                p.terminate()
    return 0


def _uvicorn_options(log_level: str) -> dict[str, object]:
    return {
        "factory": True,
        "log_level": log_level,
        "access_log": False,
        # Named, not "auto": a missing extra must fail loudly rather than fall back to the slow ones.
        "loop": "uvloop",
        "http": "httptools",
        # Feed updates are small JSON frames that barely compress; per-socket deflate state
        # cost ~45 KB of each idle subscription (bench live).
        "ws_per_message_deflate": False,
    }


def _serve_process(host: str, port: int, log_level: str, part: Balance) -> None:
    """One API process of `serve --workers N`: its own listening socket on the shared port."""
    import socket

    import uvicorn

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    from homefeed.cli import balance

    balance.current = part
    options = _uvicorn_options(log_level) | {"http": balance.BalancedHttpProtocol}
    config = uvicorn.Config("homefeed.app:app_from_env", **options)  # type: ignore[arg-type]
    balance.BalancedServer(config).run(sockets=[sock])


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
        if args.workers == 1:
            uvicorn.run(
                "homefeed.app:app_from_env",
                host=host,
                port=port,
                **_uvicorn_options(args.log_level),  # type: ignore[arg-type]
            )
            return 0
        # Each process listens on its own SO_REUSEPORT socket, so the kernel spreads connections
        # over them. uvicorn's --workers shares one socket, and with keep-alive clients whichever
        # process was in accept() took nearly every connection (bench read: 32 connections, one
        # process busy, the other idle).
        # ... and a process holding more connections than another hands new ones over (balance.py).
        from homefeed.cli import balance

        ctx = multiprocessing.get_context("spawn")
        counts = ctx.Array("i", args.workers)
        parts = balance.Balance.for_processes(args.workers, counts, counts.get_lock())
        procs = [ctx.Process(target=_serve_process, args=(host, port, args.log_level, p)) for p in parts]
        for p in procs:
            p.start()
        # Each process has its own copies now. Were this one to keep the receiving ends, a
        # process that died would still seem to accept connections, and lose them.
        for part in parts:
            part.close()

        def stop(signum: int, frame: object) -> None:
            for p in procs:
                if p.pid is not None and p.is_alive():
                    os.kill(p.pid, signal.SIGTERM)

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        for p in procs:
            p.join()
    return 0


def cmd_seed(settings: Settings, args: argparse.Namespace) -> int:
    # Imported here: numpy and rich load only for this command.
    from homefeed.seed import world as seed

    params = seed.SeedParams(
        users=args.users,
        seed=args.seed,
        posts_per_user=args.posts_per_user,
        reset=args.reset,
        active_days=settings.active_days,
    )
    try:
        params.check()
        with servers_for(settings) as ready:
            asyncio.run(run_migrations(ready))
            with seed.RichProgress() as progress:
                report = asyncio.run(seed.seed_from_settings(ready, params, progress))
    except seed.SeedError as exc:
        print(f"homefeed seed: {exc}", file=sys.stderr)
        return 1
    print(report.summary())
    return 0


class _Report(Protocol):
    def lines(self) -> list[str]: ...


R = TypeVar("R", bound=_Report)


def _bench(
    name: str, settings: Settings, run: Callable[[Settings], Coroutine[object, object, R]]
) -> R | None:
    """Run one bench against the configured (or embedded) servers and print its report."""
    from homefeed.bench import BenchError

    try:
        with servers_for(settings) as ready:
            asyncio.run(run_migrations(ready))
            report: R = asyncio.run(run(ready))
    except BenchError as exc:
        print(f"homefeed bench {name}: {exc}", file=sys.stderr)
        return None
    print()
    for line in report.lines():
        print(line)
    return report


def _say(line: str) -> None:
    print(line, flush=True)


def cmd_bench(settings: Settings, args: argparse.Namespace) -> int:
    # The CLI is the composition root: the bench (which drives workers) loads only for this command.
    from pathlib import Path

    from homefeed.bench import fanout

    options = fanout.FanoutOptions(
        posts=args.posts,
        seconds=args.seconds,
        fanout_keys=args.fanout_keys,
        min_users=args.min_users,
        json_path=Path(args.json) if args.json else None,
    )
    if _bench("fanout", settings, lambda ready: fanout.run(ready, options, log=_say)) is None:
        return 1
    if options.json_path is not None:
        print(f"wrote {options.json_path}")
    return 0


def cmd_bench_live(settings: Settings, args: argparse.Namespace) -> int:
    # Imported here: the bench loads only for this command.
    from pathlib import Path

    from homefeed.bench import live

    options = live.LiveOptions(
        subscribers=args.subscribers,
        posts=args.posts,
        legacy_share=args.legacy_share,
        threshold=args.threshold,
        workers=args.workers,
        compression=not args.no_compression,
        min_users=args.min_users,
        json_path=Path(args.json) if args.json else None,
    )
    if _bench("live", settings, lambda ready: live.run(ready, options, log=_say)) is None:
        return 1
    if options.json_path is not None:
        print(f"wrote {options.json_path}")
    return 0


def cmd_bench_read(settings: Settings, args: argparse.Namespace) -> int:
    # Imported here: the bench (numpy, matplotlib) loads only for this command.
    from pathlib import Path

    from homefeed.bench import read

    json_path = Path(args.json) if args.json else None
    base = json_path.with_suffix("") if json_path else settings.data_dir / "bench-read"
    options = read.ReadOptions(
        connections=args.connections,
        seconds=args.seconds,
        warmup=args.warmup,
        rounds=args.rounds,
        users=args.users,
        workers=args.workers,
        variants=tuple(v.strip() for v in args.variants.split(",") if v.strip()),
        min_users=args.min_users,
        json_path=json_path,
        markdown_path=Path(args.markdown) if args.markdown else base.with_suffix(".md"),
        chart_path=Path(args.chart) if args.chart else base.with_suffix(".png"),
    )
    report = _bench("read", settings, lambda ready: read.run(ready, options, log=_say))
    if report is None:
        return 1
    for path in read.write_outputs(report, options):
        print(f"wrote {path}")
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
    work = sub.add_parser("worker", help="run fan-out workers (as many processes as you like, anywhere)")
    work.add_argument("--processes", type=int, default=1, help="worker processes (default 1)")
    work.set_defaults(run=cmd_worker)
    mig = sub.add_parser("migrate", help="apply pending database migrations")
    mig.set_defaults(run=cmd_migrate)
    sd = sub.add_parser("seed", help="load a synthetic power-law social graph (password: 'password')")
    sd.add_argument("--users", type=int, required=True, help="number of users")
    sd.add_argument("--seed", type=int, default=0, help="random seed: the same seed gives the same graph")
    sd.add_argument("--posts-per-user", type=float, default=10.0, help="mean posts per user (default 10)")
    sd.add_argument("--reset", action="store_true", help="truncate users, posts, follows, ... first")
    sd.set_defaults(run=cmd_seed)
    bench = sub.add_parser("bench", help="benchmarks against the seeded graph (run `homefeed seed` first)")
    bench_sub = bench.add_subparsers(dest="bench", required=True)
    bf = bench_sub.add_parser("fanout", help="fan-out rate, createPost latency, cold rebuild, lag, memory")
    bf.add_argument("--json", metavar="PATH", default=None, help="also write the figures as JSON to PATH")
    bf.add_argument("--posts", type=int, default=40, help="samples for latency and lag figures (default 40)")
    bf.add_argument(
        "--seconds", type=float, default=6.0, help="time budget per throughput figure (default 6)"
    )
    bf.add_argument(
        "--fanout-keys", type=int, default=120_000, help="timeline writes per fan-out round (default 120000)"
    )
    bf.add_argument("--min-users", type=int, default=50_000, help="refuse smaller graphs (default 50000)")
    bf.set_defaults(run=cmd_bench)
    bl = bench_sub.add_parser(
        "live", help="live-update delivery lag and memory with 1,000 websocket subscribers"
    )
    bl.add_argument("--json", metavar="PATH", default=None, help="also write the figures as JSON to PATH")
    bl.add_argument("--subscribers", type=int, default=1000, help="concurrent subscribers (default 1000)")
    bl.add_argument(
        "--posts", type=int, default=30, help="posts, alternately ordinary and celebrity (default 30)"
    )
    bl.add_argument(
        "--legacy-share", type=float, default=0.1, help="share of subscribers on graphql-ws (default 0.1)"
    )
    bl.add_argument(
        "--threshold",
        type=int,
        default=None,
        help="the server's celebrity threshold (default: the top count)",
    )
    bl.add_argument("--workers", type=int, default=1, help="API processes (default 1)")
    bl.add_argument(
        "--no-compression", action="store_true", help="subscribers do not offer permessage-deflate"
    )
    bl.add_argument("--min-users", type=int, default=1000, help="refuse smaller graphs (default 1000)")
    bl.set_defaults(run=cmd_bench_live)
    br = bench_sub.add_parser("read", help="homeFeed reads at 32 connections: hybrid vs pull vs the floor")
    br.add_argument("--json", metavar="PATH", default=None, help="also write the figures as JSON to PATH")
    br.add_argument("--markdown", metavar="PATH", default=None, help="table (default: beside the JSON)")
    br.add_argument("--chart", metavar="PATH", default=None, help="PNG chart (default: beside the JSON)")
    br.add_argument("--connections", type=int, default=32, help="concurrent connections (default 32)")
    br.add_argument("--seconds", type=float, default=20.0, help="measured seconds per variant (default 20)")
    br.add_argument("--warmup", type=float, default=5.0, help="warm-up seconds per variant (default 5)")
    br.add_argument(
        "--rounds", type=int, default=4, help="slices the variants are measured in, in turn (default 4)"
    )
    br.add_argument("--users", type=int, default=2000, help="active users sampled (default 2000)")
    br.add_argument("--workers", type=int, default=2, help="API processes (default 2)")
    br.add_argument("--variants", default="hybrid,pull,floor", help="which, in order (default all three)")
    br.add_argument("--min-users", type=int, default=50_000, help="refuse smaller graphs (default 50000)")
    br.set_defaults(run=cmd_bench_read)
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
