"""The API servers a bench starts, as the bench sees them."""

from __future__ import annotations

import os

import psutil

from homefeed.bench.live.serving import other_homefeed_processes
from homefeed.bench.server import ServedApi
from homefeed.feed import config
from homefeed.feed.config import Settings


async def test_a_bench_counts_its_own_worker_as_its_own_not_as_another_command(settings_: Settings) -> None:
    server = ServedApi(settings_, config.jwt_secret(settings_), 1, {}, worker_apart=True)
    try:
        await server.wait_healthy(120)
        assert server.worker is not None
        worker = server.worker.pid
        assert worker in {p.pid for p in server.every_process()}
        assert server.proc.pid in {p.pid for p in server.every_process()}
        mine = {os.getpid(), *(p.pid for p in server.every_process())}
        mine |= {p.pid for p in psutil.Process().parents()}
        reported = " ".join(other_homefeed_processes(mine))
        assert f"{worker}:" not in reported
    finally:
        server.stop()
