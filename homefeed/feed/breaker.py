"""Keeping the read path off a failing Redis: a circuit breaker and a deadline for each Redis call.

Redis holds only derived data, so a read that cannot use it is answered from PostgreSQL.
What must not happen is every read waiting for Redis first: with Redis hung (accepting
connections, answering nothing) each read would wait for the client's timeout. After a few
failures in a row the breaker opens: reads skip Redis for `open_seconds`, then one read
probes it. A probe that fails opens it again; one that succeeds closes it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from redis.exceptions import TimeoutError as RedisTimeoutError

T = TypeVar("T")

# Failures in a row that open the breaker. A hung Redis fails every read waiting on it at
# once, so a burst trips it; one stray error among successes does not.
FAILURES = 3


class Breaker:
    """Closed (use Redis), open (skip it until a deadline), then one probe."""

    def __init__(
        self, open_seconds: float, failures: int = FAILURES, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.open_seconds = open_seconds
        self._clock = clock
        self.threshold = failures
        self.failures = 0
        # 0.0 while closed; else when the next probe may go.
        self.open_until = 0.0

    @property
    def is_open(self) -> bool:
        """Whether reads are being kept off Redis (a probe may still be due)."""
        return self.open_until != 0.0

    def allow(self) -> bool:
        """Whether this read may use Redis: always while closed; once per open period after it opens."""
        if self.open_until == 0.0:
            return True
        now = self._clock()
        if now < self.open_until:
            return False
        # This caller is the probe. Re-arming (instead of a "probing" flag) means a probe that
        # never reports back (its request cancelled) cannot leave the breaker stuck: another
        # read probes after the next period.
        self.open_until = now + self.open_seconds
        return True

    def success(self) -> None:
        """Redis answered: close."""
        if self.failures or self.open_until:
            self.failures = 0
            self.open_until = 0.0

    def failure(self) -> None:
        """Redis failed or timed out: open after enough in a row (at once for a failed probe)."""
        self.failures += 1
        if self.open_until or self.failures >= self.threshold:
            self.open_until = self._clock() + self.open_seconds


async def within(seconds: float, call: Awaitable[T]) -> T:
    """The result of a Redis call, or redis' TimeoutError once `seconds` have passed.

    redis-py drops a connection whose command was cancelled, so no reply is left unread.
    """
    try:
        async with asyncio.timeout(seconds):
            return await call
    except TimeoutError:
        raise RedisTimeoutError(f"Redis did not answer within {seconds} s") from None
