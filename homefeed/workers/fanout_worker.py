"""The fan-out worker: claims outbox jobs and carries them out, forever or until the outbox is empty."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import traceback

from redis.exceptions import RedisError

from homefeed.feed.job_runner import JobRunner
from homefeed.feed.metrics import JOBS
from homefeed.feed.services import Services
from homefeed.feed.store.outbox import Job, Outbox
from homefeed.workers.heartbeat import Heartbeat, LeaseLost
from homefeed.workers.sampler import sample_forever

log = logging.getLogger(__name__)

CLAIM = 16
IDLE_SLEEP = 0.02
MAX_BACKOFF = 30.0
# A dead letter keeps the end of the error: enough to recognise it, bounded in size.
ERROR_CHARS = 2000
# At shutdown the claimed batch under way may finish for this long; then it is cancelled.
# Without a bound, one job stuck on a lock or a hung server would hold the process's exit
# past any supervisor's grace period, and it would be SIGKILLed anyway.
STOP_GRACE = 5.0
# How long a cancelled batch may take to unwind (its heartbeat stops, its job's statement is
# cancelled) before the worker returns without it.
CANCEL_WAIT = 1.0


class FanoutWorker:
    """One worker: any number of them, in any processes, share the outbox safely.

    Its timeline writes go through the services' Feeds, whose fan-out connection is closed
    with the services.
    """

    def __init__(self, services: Services) -> None:
        settings = services.settings
        self.max_attempts = settings.job_max_attempts
        self.feeds = services.feeds
        self.outbox = Outbox(services.pool, settings.job_lease_seconds, settings.job_max_attempts)
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
        """Claim one batch and carry it out under a heartbeat; returns how many jobs were claimed."""
        claimed_at = time.monotonic()
        jobs = await self.outbox.claim(CLAIM)
        if not jobs:
            return 0
        done: list[Job] = []
        async with Heartbeat(self.outbox, [j.id for j in jobs], claimed_at) as beat:
            for job in jobs:
                if not beat.may_start(job.id):
                    log.info("outbox job %d (%s) is no longer ours; skipped", job.id, job.kind)
                    continue
                try:
                    await beat.run(job.id, self.jobs.handle(job))
                except LeaseLost:
                    log.warning(
                        "outbox job %d (%s) was taken over mid-run; left to its new holder", job.id, job.kind
                    )
                except Exception as exc:
                    await beat.release(job.id)
                    await self._failed(job, exc)
                else:
                    done.append(job)
            # On a cluster, jobs are done only once their writes reached a replica: a failover
            # then cannot take back what a finished job wrote (replication keeps order, so all
            # of it). One barrier per claimed batch; if it fails, the jobs' leases run out and
            # they are redone (their writes are idempotent).
            if done and not await self._replicated():
                return len(jobs)
            # Inside the heartbeat: finished jobs stay leased until they are deleted.
            await self.outbox.complete([j.id for j in done])
        for job in done:
            JOBS.labels(job.kind, "done").inc()
        return len(jobs)

    async def _replicated(self) -> bool:
        try:
            await self.feeds.replicated()
        except (RedisError, OSError) as exc:
            log.warning("replication barrier failed; the batch's jobs will be redone: %s", exc)
            return False
        return True

    async def _failed(self, job: Job, exc: Exception) -> None:
        error = "".join(traceback.format_exception(exc))[-ERROR_CHARS:]
        if job.attempts >= self.max_attempts:
            if await self.outbox.bury(job, error):
                JOBS.labels(job.kind, "dead").inc()
                log.error(
                    "outbox job %d (%s) failed %d times; moved to dead_jobs (see `homefeed jobs list`)",
                    job.id,
                    job.kind,
                    job.attempts,
                    exc_info=exc,
                )
            return
        delay = min(MAX_BACKOFF, 0.2 * 2 ** min(job.attempts, 8)) * random.uniform(0.5, 1.0)
        log.warning("outbox job %d (%s) failed, retrying in %.1fs", job.id, job.kind, delay, exc_info=exc)
        if await self.outbox.retry_later(job, delay, error):
            JOBS.labels(job.kind, "failed").inc()

    async def drain(self) -> None:
        """Run until no job is left that can be claimed now (tests, seeding, benchmarks)."""
        while await self.run_once():
            pass

    async def run_forever(self, stop: asyncio.Event, grace: float = STOP_GRACE) -> None:
        """Work until `stop` is set, sleeping briefly when idle; survives database and Redis outages.

        Once `stop` is set, the batch under way has `grace` seconds to finish; after that it is
        abandoned (see _batch_until_stopped), so this returns within grace + CANCEL_WAIT.
        Beside it, the outbox sampler keeps this process's outbox gauges current.
        """
        sampler = asyncio.create_task(sample_forever(self.outbox, stop), name="outbox-sampler")
        try:
            while not stop.is_set():
                try:
                    claimed = await self._batch_until_stopped(stop, grace)
                except Exception:
                    log.exception("fan-out worker: claim failed")
                    claimed = 0
                    await _sleep_or_stop(stop, 1.0)
                if not claimed:
                    await _sleep_or_stop(stop, IDLE_SLEEP)
        finally:
            sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sampler

    async def _batch_until_stopped(self, stop: asyncio.Event, grace: float) -> int:
        """One batch, abandoned if it is still running `grace` seconds after `stop` is set.

        Abandoning is what a killed worker does, and is as safe: the batch is cancelled (a job
        that loses its lease is cancelled the same way), its heartbeat stops, and the jobs not
        yet completed keep their lease until it runs out; another worker then claims them and
        redoes them, and their timeline writes are idempotent. Each abandoned job has used one
        of its attempts.
        """
        batch = asyncio.ensure_future(self.run_once())
        stopping = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait([batch, stopping], return_when=asyncio.FIRST_COMPLETED)
            if not batch.done():
                await asyncio.wait([batch], timeout=grace)
            if batch.done():
                return batch.result()
            log.warning(
                "fan-out worker: the batch under way has not finished %.1f s after stop; abandoning it "
                "(its jobs are redone by the next worker once their leases run out)",
                grace,
            )
            batch.cancel()
            await asyncio.wait([batch], timeout=CANCEL_WAIT)
            if batch.done() and not batch.cancelled() and (error := batch.exception()) is not None:
                log.warning("fan-out worker: the abandoned batch ended with an error", exc_info=error)
            return 0
        finally:
            stopping.cancel()
            # Also when this is cancelled itself: the batch never outlives its worker.
            batch.cancel()


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    # asyncio.timeout, not wait_for, which can lose a cancel that lands as the wait ends.
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await stop.wait()
