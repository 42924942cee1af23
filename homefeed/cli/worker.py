"""`homefeed worker`: fan-out workers, as many processes as asked, beside or apart from the API."""

from __future__ import annotations

import argparse
import asyncio
import logging
import multiprocessing
import signal

from homefeed.cli.servers import migrated_servers
from homefeed.feed.config import Settings
from homefeed.feed.services import open_services

log = logging.getLogger("homefeed")


def add_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    work = commands.add_parser("worker", help="run fan-out workers (as many processes as you like, anywhere)")
    work.add_argument("--processes", type=int, default=1, help="worker processes (default 1)")
    work.set_defaults(run=run)


def run(settings: Settings, args: argparse.Namespace) -> int:
    with migrated_servers(settings) as ready:
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


def _work_in_process(settings: Settings) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
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
