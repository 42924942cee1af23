"""The fan-out worker: claims outbox jobs and carries them out, forever or until the outbox is empty."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random

from homefeed.feed.job_runner import JobRunner
from homefeed.feed.services import Services
from homefeed.feed.store.outbox import Outbox

log = logging.getLogger(__name__)

CLAIM = 16
IDLE_SLEEP = 0.02
MAX_BACKOFF = 30.0


class FanoutWorker:
    """One worker: any number of them, in any processes, share the outbox safely.

    Its timeline writes go through the services' Feeds, whose fan-out connection is closed
    with the services.
    """

    def __init__(self, services: Services) -> None:
        settings = services.settings
        self.outbox = Outbox(services.pool, settings.job_lease_seconds)
        self.jobs = JobRunner(
            services.pool,
            services.feeds,
            self.outbox,
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
                await self.jobs.handle(job)
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


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
