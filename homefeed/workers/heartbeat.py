"""A claimed batch's heartbeat: renews the leases of the jobs a worker still holds while it works.

Leases are short so a dead worker's jobs come back in seconds; the heartbeat renews them
every third of a lease, in one statement for the whole batch, so a job slower than a lease
is still never handed to a second worker.

When a renewal finds a job held by another worker (our lease ran out first: the event loop
stalled, or PostgreSQL was unreachable for a whole lease), the job is that worker's now:
ours is cancelled if it is running and skipped if it has not started, and it is neither
completed nor retried by us. When renewals keep failing until the last successful one's
lease has run out, every job still held is treated the same way, since another worker may
have it. A job that is simply gone from the outbox (completed, split or buried) is skipped
if not yet started and left to finish if running, since its own handler may have split it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Coroutine, Iterable
from types import TracebackType
from typing import Any

from homefeed.feed.store.outbox import Outbox

log = logging.getLogger(__name__)


class LeaseLost(Exception):
    """The job's lease passed to another worker while this one ran it."""


class Heartbeat:
    """Renews a batch's leases until the batch is done; an async context manager."""

    def __init__(self, outbox: Outbox, job_ids: Iterable[int], claimed_at: float) -> None:
        self._outbox = outbox
        self._held = set(job_ids)
        self._taken: set[int] = set()
        self._gone: set[int] = set()
        self._interval = outbox.lease_seconds / 3
        # Counted from before the claim was sent: the lease cannot last longer than that.
        self._valid_until = claimed_at + outbox.lease_seconds
        self._running: tuple[int, asyncio.Future[None]] | None = None
        # Held while a renewal is in flight, so a released job is never renewed afterwards.
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Heartbeat:
        self._task = asyncio.create_task(self._beat(), name="lease-heartbeat")
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def may_start(self, job_id: int) -> bool:
        """Whether the job is still ours to start: not taken by another worker, not gone."""
        return job_id not in self._taken and job_id not in self._gone

    async def release(self, job_id: int) -> None:
        """Stop renewing a job (before retrying or burying it sets its own availability)."""
        async with self._lock:
            self._held.discard(job_id)

    async def run(self, job_id: int, work: Coroutine[Any, Any, None]) -> None:
        """Run one job's work; raises LeaseLost if another worker took the job meanwhile."""
        task: asyncio.Future[None] = asyncio.ensure_future(work)
        self._running = (job_id, task)
        try:
            await asyncio.wait([task])
        except asyncio.CancelledError:
            # The batch is being abandoned (the worker is stopping): the job is cancelled and
            # waited for, so its statement is cancelled and its connection given back before the
            # batch ends. The stopping worker bounds this wait.
            task.cancel()
            await asyncio.wait([task])
            raise
        finally:
            self._running = None
        if task.cancelled():
            if job_id in self._taken:
                raise LeaseLost(job_id)
            raise asyncio.CancelledError
        task.result()

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            async with self._lock:
                ids = sorted(self._held)
                if not ids:
                    continue
                sent = time.monotonic()
                try:
                    # asyncio.timeout, not wait_for: Python 3.11's wait_for returns the result
                    # when a cancel (the batch ending: __aexit__) lands just as the renewal
                    # completes, and the cancel is lost; this loop then beat on forever and
                    # __aexit__ waited for it forever.
                    async with asyncio.timeout(max(0.1, self._valid_until - sent)):
                        renewal = await self._outbox.renew(ids)
                except Exception:
                    if time.monotonic() >= self._valid_until:
                        log.warning("lease renewal failing for a whole lease: giving up %d job(s)", len(ids))
                        self._lose(ids)
                    else:
                        log.warning("lease renewal failed; retrying", exc_info=True)
                    continue
                self._valid_until = sent + self._outbox.lease_seconds
                if renewal.taken:
                    log.warning("jobs %s were taken over by another worker", sorted(renewal.taken))
                    self._lose(renewal.taken)
                self._gone.update(i for i in ids if i not in renewal.kept and i not in renewal.taken)
                self._held.difference_update(self._gone)

    def _lose(self, ids: Iterable[int]) -> None:
        lost = set(ids)
        self._taken |= lost
        self._held -= lost
        if self._running is not None and self._running[0] in lost:
            self._running[1].cancel()
