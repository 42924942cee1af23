"""`homefeed bench live-heap`: where an idle subscription's memory goes, by allocating module.

The API runs in this process, under tracemalloc, with the same uvicorn options as `serve`; a
load-generator process (the live bench's) connects N subscribers of N different users of the
seeded graph. Once they are all registered and idle, the traced memory that appeared since
before they connected is grouped by the file that allocated it and divided by N, beside the
process's RSS growth per subscriber. tracemalloc sees Python's allocators only (objects,
buffers, zlib's state), not memory that C libraries take from malloc directly; the gap between
the traced total and the RSS growth is that, plus allocator overhead and fragmentation.
"""

from __future__ import annotations

import asyncio
import gc
import tracemalloc
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

import psutil

from homefeed.bench.errors import BenchError
from homefeed.bench.live.api import SUBSCRIPTION, TRANSPORT_WS
from homefeed.bench.live.load import Plan, answer, start_load_generator
from homefeed.feed import config
from homefeed.feed.auth import Tokens
from homefeed.feed.config import Settings


@dataclass
class HeapReport:
    """Traced memory per idle subscription, by allocating file, and RSS per subscription."""

    subscribers: int
    connected: int
    rss_per_subscription_kb: float
    traced_per_subscription_kb: float
    by_file_kb: dict[str, float] = field(
        default_factory=dict
    )  # per subscription, largest first (file or line)
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def lines(self) -> list[str]:
        out = [
            f"subscribers {self.connected:,} of {self.subscribers:,} connected and idle",
            f"rss_per_subscription_kb     {self.rss_per_subscription_kb:8.1f}",
            f"traced_per_subscription_kb  {self.traced_per_subscription_kb:8.1f}  (tracemalloc; by file:)",
        ]
        out += [f"  {kb:8.2f} KB  {name}" for name, kb in self.by_file_kb.items()]
        out += [f"note: {n}" for n in self.notes]
        return out


def _short(filename: str) -> str:
    for marker in ("site-packages/", "/lib/python3"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename.rsplit("/homefeed/", 1)[-1] if "/homefeed/" in filename else filename


async def run(
    settings: Settings,
    subscribers: int,
    top: int = 25,
    log: Callable[[str], None] = print,
    *,
    by: str = "filename",
) -> HeapReport:
    """Serve in this process, connect `subscribers` idle subscriptions, and group the new memory."""
    from homefeed.feed.store.pool import create_pool

    assert settings.database_url
    pool = await create_pool(settings.database_url, min_size=1, max_size=1)
    # A live viewer's last_seen_at is refreshed when it subscribes: put the graph's back after.
    seen = await pool.fetch("SELECT id, last_seen_at FROM users ORDER BY id LIMIT $1", subscribers)
    ids = [r["id"] for r in seen]
    try:
        return await _measure(settings, ids, subscribers, top, log, by)
    finally:
        await pool.executemany(
            "UPDATE users SET last_seen_at = $2 WHERE id = $1", [(r["id"], r["last_seen_at"]) for r in seen]
        )
        await pool.close()


async def _measure(
    settings: Settings, ids: list[int], subscribers: int, top: int, log: Callable[[str], None], by: str
) -> HeapReport:
    import uvicorn

    from homefeed.app import create_app
    from homefeed.bench.server import free_port
    from homefeed.websocket import uvicorn_options

    if len(ids) < subscribers:
        raise BenchError(f"the graph has {len(ids):,} users, fewer than {subscribers:,} subscribers")
    tokens = Tokens(config.jwt_secret(settings), settings.token_ttl_days * 86_400)

    port = free_port()
    app = create_app(settings.with_(inprocess_worker=False))
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            port=port,
            log_level="warning",
            access_log=False,
            **uvicorn_options(),
        )
    )
    serving = asyncio.create_task(server.serve())
    while not server.started:
        if serving.done():
            serving.result()
        await asyncio.sleep(0.05)
    hub = app.state.services.live
    me = psutil.Process()
    plan = Plan(
        f"ws://127.0.0.1:{port}/graphql",
        [tokens.issue(u) for u in ids],
        [TRANSPORT_WS] * len(ids),
        50,
        False,
        SUBSCRIPTION,
    )
    loader: BaseProcess | None = None
    parent: Connection | None = None
    try:
        gc.collect()
        tracemalloc.start(1)
        before = tracemalloc.take_snapshot()
        rss_before = me.memory_info().rss
        log(f"serving on port {port}; connecting {subscribers:,} subscribers ...")
        loader, parent = start_load_generator(plan, "bench-live-heap")
        _, connected, failed = await answer(parent, max(600.0, subscribers * 0.2))
        for _ in range(600):
            if hub.subscriber_count >= connected:
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(2.0)  # idle: start-up work finished
        registered = hub.subscriber_count
        gc.collect()
        after = tracemalloc.take_snapshot()
        rss_after = me.memory_info().rss
        tracemalloc.stop()
    finally:
        if loader is not None and parent is not None and loader.is_alive():
            parent.send(("stop",))
            await asyncio.to_thread(loader.join, 30)
            if loader.is_alive():
                loader.kill()
        server.should_exit = True
        await serving
    n = max(1, connected)
    stats = after.compare_to(before, by)
    grouped: dict[str, float] = {}
    for stat in stats:
        frame = stat.traceback[0]
        name = _short(frame.filename) + (f":{frame.lineno}" if by == "lineno" else "")
        grouped[name] = grouped.get(name, 0.0) + stat.size_diff / 1024 / n
    largest = dict(sorted(grouped.items(), key=lambda kv: -kv[1])[:top])
    report = HeapReport(
        subscribers=subscribers,
        connected=connected,
        rss_per_subscription_kb=(rss_after - rss_before) / 1024 / n,
        traced_per_subscription_kb=sum(s.size_diff for s in stats) / 1024 / n,
        by_file_kb={k: round(v, 2) for k, v in largest.items()},
    )
    report.notes += [f"failed: {line}" for line in failed[:5]]
    report.notes.append(f"hub subscribers registered while measured: {registered:,}")
    return report
