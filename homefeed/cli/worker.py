"""`homefeed worker`: fan-out workers, as many processes as asked, beside or apart from the API."""

from __future__ import annotations

import argparse
import asyncio
import logging
import multiprocessing
import signal
import sys

from prometheus_client import start_http_server

from homefeed.cli.servers import migrated_servers
from homefeed.feed.config import Settings
from homefeed.feed.services import open_services
from homefeed.tether import die_with_parent

log = logging.getLogger("homefeed")


def add_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    work = commands.add_parser("worker", help="run fan-out workers (as many processes as you like, anywhere)")
    work.add_argument("--processes", type=int, default=1, help="worker processes (default 1)")
    work.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        metavar="P",
        help="serve Prometheus /metrics on P (process i of --processes N on P+i); default: none",
    )
    work.set_defaults(run=run)


def run(settings: Settings, args: argparse.Namespace) -> int:
    port: int | None = args.metrics_port
    if args.processes < 1:
        print("homefeed worker: --processes must be at least 1", file=sys.stderr)
        return 2
    if port is not None and not 1 <= port <= 65535 - (args.processes - 1):
        print(
            f"homefeed worker: --metrics-port must leave room for {args.processes} port(s)", file=sys.stderr
        )
        return 2
    with migrated_servers(settings) as ready:
        log.info("fan-out: %d worker process(es)", args.processes)
        if args.processes == 1:
            _work_in_process(ready, port)
            return 0
        ctx = multiprocessing.get_context("spawn")
        procs = [
            ctx.Process(target=_work_in_process, args=(ready, None if port is None else port + i))
            for i in range(args.processes)
        ]
        for p in procs:
            p.start()
        try:
            for p in procs:
                p.join()
        except KeyboardInterrupt:
            for p in procs:
                p.terminate()
    return 0


def _work_in_process(settings: Settings, metrics_port: int | None = None) -> None:
    # Started by a supervising process: die with it, so killing it outright leaves no orphans.
    parent = multiprocessing.parent_process()
    if parent is not None and parent.pid is not None:
        die_with_parent(parent.pid)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if metrics_port is not None:
        # A daemon thread: scrapes never wait on the worker's event loop, and it dies with the process.
        start_http_server(metrics_port, addr=settings.host)
        log.info("worker metrics on http://%s:%d/metrics", settings.host, metrics_port)
    asyncio.run(_work(settings))


async def _work(settings: Settings) -> None:
    # Imported here: only this command reaches into the worker room.
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
