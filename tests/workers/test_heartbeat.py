"""The lease heartbeat on its own (a stand-in outbox): it must stop when its batch ends."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import cast

from homefeed.feed.store.outbox import Outbox, Renewal
from homefeed.workers.heartbeat import Heartbeat


class EndsDuringARenewal:
    """An outbox whose first renewal completes just as the batch ends: the heartbeat is
    cancelled while the renewal's result is already in, as __aexit__ can cancel it."""

    lease_seconds = 0.03

    def __init__(self) -> None:
        self.beat: Heartbeat | None = None
        self.renewals = 0

    async def renew(self, job_ids: Sequence[int]) -> Renewal:
        self.renewals += 1
        if self.renewals == 1:
            assert self.beat is not None
            task = self.beat._task
            assert task is not None
            task.cancel()
        return Renewal(frozenset(job_ids), frozenset())


async def test_a_cancel_landing_as_a_renewal_completes_still_stops_the_heartbeat() -> None:
    # Python 3.11's asyncio.wait_for returns the renewal and drops a cancel that arrives once
    # the renewal is done: the heartbeat went back to sleep and the worker's batch, waiting
    # for it in __aexit__, never ended (an invariance run hung so on a loaded machine).
    outbox = EndsDuringARenewal()
    beat = Heartbeat(cast(Outbox, outbox), [1, 2], time.monotonic())
    outbox.beat = beat
    await beat.__aenter__()
    assert beat._task is not None
    done, _ = await asyncio.wait([beat._task], timeout=2)
    assert done, f"the heartbeat kept beating after its cancel ({outbox.renewals} renewals)"
    assert beat._task.cancelled()
