"""The outbox sampler: keeps the outbox gauges current and buries jobs abandoned on their last attempt.

Every process that runs a worker runs one per worker, each one cheap statement every
couple of seconds; the gauges are per process, so each scrape target reports the same
shared outbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from homefeed.feed.metrics import DEAD_JOBS, JOBS, OUTBOX_DEPTH, OUTBOX_OLDEST_AGE
from homefeed.feed.store.outbox import Outbox

log = logging.getLogger(__name__)

SAMPLE_SECONDS = 2.0


async def sample_once(outbox: Outbox) -> None:
    """Take one sample into the gauges; count buried jobs as dead."""
    stats = await outbox.sample()
    OUTBOX_DEPTH.set(stats.depth)
    OUTBOX_OLDEST_AGE.set(stats.oldest_age_seconds)
    DEAD_JOBS.set(stats.dead)
    for kind in stats.buried:
        JOBS.labels(kind, "dead").inc()
    if stats.buried:
        log.error(
            "%d outbox job(s) abandoned on their last attempt moved to dead_jobs (see `homefeed jobs list`)",
            len(stats.buried),
        )


async def sample_forever(outbox: Outbox, stop: asyncio.Event, every: float = SAMPLE_SECONDS) -> None:
    """Sample until `stop` is set; an unreachable database only skips samples."""
    while not stop.is_set():
        try:
            await sample_once(outbox)
        except Exception:
            log.warning("outbox sample failed", exc_info=True)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(every):
                await stop.wait()
