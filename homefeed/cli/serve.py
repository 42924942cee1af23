"""`homefeed serve`: the API under uvicorn, in one process or in N balanced ones."""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import os
import signal
from typing import TYPE_CHECKING

from homefeed.cli.servers import migrated_servers
from homefeed.feed import config
from homefeed.feed.config import Settings
from homefeed.tether import die_with_parent
from homefeed.websocket import uvicorn_options

if TYPE_CHECKING:
    from homefeed.cli.balance import Balance

log = logging.getLogger("homefeed")

# The app factory, by import string rather than as the function: with `--workers N` each
# spawned process imports it itself, and passing the object would make the supervising process
# import the whole app (Strawberry, the schema) only to pickle a reference to it.
APP = "homefeed.app:app_from_env"


def add_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = commands.add_parser("serve", help="run the API (embedded servers when no URLs are set)")
    serve.add_argument("--host", default=None, help="bind address (HOMEFEED_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=None, help="port (HOMEFEED_PORT, default 8000)")
    serve.add_argument("--workers", type=int, default=1, help="API processes (default 1)")
    serve.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    # Not for users: the benchmarks serve their own app factory through this same serving path
    # (they cannot import the command line, which imports them, so they name it here).
    serve.add_argument("--app", default=APP, help=argparse.SUPPRESS)
    serve.set_defaults(run=run)


def run(settings: Settings, args: argparse.Namespace) -> int:
    host = args.host or settings.host
    port = args.port if args.port is not None else settings.port
    with migrated_servers(settings) as ready:
        # Worker processes read their settings from the environment, embedded URLs included.
        assert ready.database_url and ready.redis_url
        os.environ["HOMEFEED_DATABASE_URL"] = ready.database_url
        os.environ["HOMEFEED_REDIS_URL"] = ready.redis_url
        config.jwt_secret(ready)  # create the shared secret once, before workers race for it
        log.info("serving GraphQL on http://%s:%d/graphql", host, port)
        serve(args.app, host, port, args.workers, args.log_level)
    return 0


def serve(app: str, host: str, port: int, workers: int, log_level: str) -> None:
    """Serve the ASGI app factory `app` ("module:function") until interrupted."""
    import uvicorn

    if workers == 1:
        uvicorn.run(app, host=host, port=port, **_uvicorn_options(log_level))  # type: ignore[arg-type]
        return
    # Each process listens on its own SO_REUSEPORT socket, so the kernel spreads connections
    # over them. uvicorn's --workers shares one socket, and with keep-alive clients whichever
    # process was in accept() took nearly every connection, leaving the others idle.
    # ... and a process holding more connections than another hands new ones over (balance.py).
    from homefeed.cli import balance

    ctx = multiprocessing.get_context("spawn")
    counts = ctx.Array("i", workers)
    parts = balance.Balance.for_processes(workers, counts, counts.get_lock())
    procs = [ctx.Process(target=_serve_process, args=(app, host, port, log_level, p)) for p in parts]
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


def _uvicorn_options(log_level: str) -> dict[str, object]:
    return {
        "factory": True,
        "log_level": log_level,
        "access_log": False,
        # Named, not "auto": a missing extra must fail loudly rather than fall back to the slow ones
        # (the HTTP protocol, uvicorn's httptools one, comes with the transports).
        "loop": "uvloop",
    } | uvicorn_options()


def _serve_process(app: str, host: str, port: int, log_level: str, part: Balance) -> None:
    """One API process of `serve --workers N`: its own listening socket on the shared port."""
    # Started by a supervising process: die with it, so killing it outright leaves no orphans.
    parent = multiprocessing.parent_process()
    if parent is not None and parent.pid is not None:
        die_with_parent(parent.pid)
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
    config = uvicorn.Config(app, **options)  # type: ignore[arg-type]
    balance.BalancedServer(config).run(sockets=[sock])
