"""The fan-out worker: claims outbox jobs and carries them out, forever or until the outbox is empty."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random

from homefeed.feed.fanout import Fanout
from homefeed.feed.services import Services
from homefeed.feed.store.outbox import Outbox
from homefeed.feed.timeline.bulk_writer import BulkWriter

log = logging.getLogger(__name__)

CLAIM = 16
IDLE_SLEEP = 0.02
MAX_BACKOFF = 30.0


class FanoutWorker:
    """One worker: any number of them, in any processes, share the outbox safely."""

    def __init__(self, services: Services) -> None:
        settings = services.settings
        assert settings.redis_url
        self.outbox = Outbox(services.pool, settings.job_lease_seconds)
        self.writer = BulkWriter(settings.redis_url)
        self.fanout = Fanout(
            services.pool,
            services.feeds,
            self.outbox,
            self.writer,
            services.notices,
            threshold=settings.celebrity_threshold,
            active_days=settings.active_days,
            chunk=settings.fanout_chunk,
        )

    async def run_once(self) -> int:
        """Claim one batch and carry it out; returns how many jobs were claimed."""
        jobs = await self.outbox.claim(CLAIM)
        done: list[int] = []
        for job in jobs:
            try:
                await self.fanout.handle(job)
                done.append(job.id)
            except Exception:
                delay = min(MAX_BACKOFF, 0.2 * 2 ** min(job.attempts, 8)) * random.uniform(0.5, 1.0)
                log.exception("outbox job %d (%s) failed, retrying in %.1fs", job.id, job.kind, delay)
                await self.outbox.retry_later(job, delay)
        await self.outbox.complete(done)
        return len(jobs)

    async def drain(self) -> None:
        """Run until no job is left that can be claimed now (tests, seeding, benchmarks)."""
        while await self.run_once():
            pass

    async def run_forever(self, stop: asyncio.Event) -> None:
        """Work until `stop` is set, sleeping briefly when idle; survives database and Redis outages."""
        while not stop.is_set():
            try:
                claimed = await self.run_once()
            except Exception:
                log.exception("fan-out worker: claim failed")
                claimed = 0
                await _sleep_or_stop(stop, 1.0)
            if not claimed:
                await _sleep_or_stop(stop, IDLE_SLEEP)
        await self.writer.close()


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
