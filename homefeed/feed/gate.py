"""A cap on concurrent work in one process, with a bounded queue in front of it."""

from __future__ import annotations

import asyncio
from collections import deque


class GateFull(Exception):
    """Every slot is busy and the queue is full."""


class Gate:
    """At most `slots` holders at once and `queue` waiting in line; anyone past that is refused
    at once (GateFull) rather than queued without bound.

    Not an asyncio.Semaphore: one gate may serve several event loops in turn (a process's
    shared password hasher across tests), and a semaphore binds itself to the first loop it
    ever waits on. Each waiter's future here belongs to the loop that created it.
    """

    def __init__(self, slots: int, queue: int) -> None:
        if slots < 1 or queue < 0:
            raise ValueError("a gate needs at least one slot and a non-negative queue")
        self._slots = slots
        self._queue = queue
        self._busy = 0
        self._waiting: deque[asyncio.Future[None]] = deque()

    @property
    def busy(self) -> int:
        """Slots held now."""
        return self._busy

    @property
    def waiting(self) -> int:
        """Callers in line now."""
        return sum(1 for f in self._waiting if not f.done())

    async def acquire(self) -> None:
        """Take a slot, waiting in line if need be; GateFull if the line is full too."""
        if self._busy < self._slots and not self.waiting:
            self._busy += 1
            return
        if self.waiting >= self._queue:
            raise GateFull
        turn = asyncio.get_running_loop().create_future()
        self._waiting.append(turn)
        try:
            await turn  # woken with the slot handed over: _busy already counts it
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                self.release()  # handed a slot while being cancelled: pass it on
            else:
                self._waiting.remove(turn)
            raise

    def release(self) -> None:
        """Give a slot back: to the first caller in line, if any."""
        while self._waiting:
            turn = self._waiting.popleft()
            if not turn.done():
                turn.set_result(None)
                return
        self._busy -= 1
