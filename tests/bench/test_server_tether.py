"""A bench killed outright takes the API servers it started with it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys

import psutil

from homefeed.feed.config import Settings

# Not a bound on speed: the untethered servers never went, and a test must end.
HANG = 60

# What a bench does: start the API (two processes, and fan-out in a worker process of its own),
# wait until it answers, then keep running; it prints every server process id.
BENCH = """
import asyncio
from homefeed.bench.server import ServedApi
from homefeed.feed import config

async def main() -> None:
    settings = config.load()
    server = ServedApi(settings, config.jwt_secret(settings), 2, {}, worker_apart=True)
    await server.wait_healthy(120)
    pids = [p.pid for p in server.every_process()]
    print(" ".join(map(str, pids)), flush=True)
    await asyncio.sleep(3600)

asyncio.run(main())
"""


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


async def test_the_servers_of_a_bench_killed_outright_go_with_it(settings_: Settings) -> None:
    assert settings_.database_url and settings_.redis_url
    env = dict(os.environ)
    env.update(
        HOMEFEED_DATABASE_URL=settings_.database_url,
        HOMEFEED_REDIS_URL=settings_.redis_url,
        HOMEFEED_REDIS_PREFIX=settings_.redis_prefix,
        HOMEFEED_DATA_DIR=str(settings_.data_dir),
    )
    bench = await asyncio.create_subprocess_exec(
        sys.executable, "-c", BENCH, env=env, stdout=asyncio.subprocess.PIPE
    )
    pids: list[int] = []
    try:
        assert bench.stdout is not None
        line = await asyncio.wait_for(bench.stdout.readline(), 180)
        pids = [int(p) for p in line.split()]
        assert len(pids) >= 4  # serve's supervisor, its two API processes, the worker
        assert all(_alive(p) for p in pids)
        bench.send_signal(signal.SIGKILL)
        await asyncio.wait_for(bench.wait(), HANG)
        for _ in range(HANG * 10):
            if not any(_alive(p) for p in pids):
                break
            await asyncio.sleep(0.1)
        left = [p for p in pids if _alive(p)]
        assert not left, f"server processes outlived the bench: {left}"
    finally:
        if bench.returncode is None:
            bench.kill()
            await bench.wait()
        for p in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, signal.SIGKILL)
