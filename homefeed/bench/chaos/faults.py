"""The faults: SIGKILL of workers and API processes, Valkey killed and restarted, one FLUSHALL.

One fault at a time, at exponential gaps, every kind in each round; each restarts what it
killed before the next. Faults on servers the run does not own are recorded as skipped, with
the reason.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable

from homefeed.bench.chaos.fleet import Fleet
from homefeed.bench.chaos.ledger import Fault, Ledger

NOT_OWNED = "Valkey is the configured one, not the run's own: not killed, not flushed"


class Faults:
    """Injects faults into `fleet` until a deadline, recording each in the ledger."""

    def __init__(
        self, fleet: Fleet, ledger: Ledger, mean_gap: float, server_timeout: float, seed: int
    ) -> None:
        self.fleet = fleet
        self.ledger = ledger
        self.mean_gap = mean_gap
        self.server_timeout = server_timeout
        self.rng = random.Random(seed + 1)

    async def run(self, until: float) -> None:
        """Faults at random until `until` (monotonic); the flush once, somewhere in the middle."""
        flush_at = time.monotonic() + (until - time.monotonic()) * self.rng.uniform(0.3, 0.7)
        flushed = False
        # Rounds of every kind in a shuffled order (kills of one process twice as often), so even
        # a short run injects each kind.
        kinds = [self.kill_worker, self.kill_api, self.kill_worker, self.kill_api, self.restart_valkey]
        kinds.append(self.kill_all)
        queue: list[Callable[[], Awaitable[None]]] = []
        while True:
            gap = self.rng.expovariate(1 / self.mean_gap)
            if time.monotonic() + gap >= until:
                break
            await asyncio.sleep(gap)
            if not flushed and time.monotonic() >= flush_at:
                flushed = True
                await self.flush()
            else:
                if not queue:
                    queue = self.rng.sample(kinds, len(kinds))
                await queue.pop()()
        if not flushed:
            await self.flush()

    def _fault(self, kind: str, target: str) -> Fault:
        fault = Fault(kind, target, time.time())
        self.ledger.faults.append(fault)
        return fault

    async def _down(self) -> None:
        # Long enough for clients to notice and for in-flight jobs to be cut, short of a real outage.
        await asyncio.sleep(self.rng.uniform(0.2, 2.0))

    async def kill_worker(self) -> None:
        slot = self.rng.randrange(len(self.fleet.workers))
        fault = self._fault("kill-worker", f"worker {slot}")
        self.fleet.kill_worker(slot)
        await self._down()
        self.fleet.start_worker(slot)
        fault.restored_at = time.time()

    async def kill_api(self) -> None:
        slot = self.rng.randrange(len(self.fleet.apis))
        fault = self._fault("kill-api", f"api {slot}")
        self.fleet.kill_api(slot)
        await self._down()
        await self.fleet.restart_api(slot, self.server_timeout)
        fault.restored_at = time.time()

    async def kill_all(self) -> None:
        """Every API process and worker at once, as in a crashed deploy; then all back."""
        fault = self._fault("kill-all", "every API process and worker")
        for slot in range(len(self.fleet.workers)):
            self.fleet.kill_worker(slot)
        for slot in range(len(self.fleet.apis)):
            self.fleet.kill_api(slot)
        await self._down()
        await self.fleet.heal(self.server_timeout)
        fault.restored_at = time.time()

    async def restart_valkey(self) -> None:
        fault = self._fault("restart-valkey", "valkey")
        valkey = self.fleet.valkey
        if valkey is None:
            fault.skipped = NOT_OWNED
            return
        valkey.kill()
        await self._down()
        await valkey.start()
        fault.restored_at = time.time()

    async def flush(self) -> None:
        fault = self._fault("flush-valkey", "valkey")
        if self.fleet.valkey is None:
            fault.skipped = NOT_OWNED
            return
        await self.fleet.valkey.flush()
        fault.restored_at = fault.at
