"""Refresh-ahead: one background refresh at a time, owned by the object that closes it.

A value kept in process for a short time (a pulled author's recent list, the set of pulled
authors) is read again before it expires, in the background, so no reader waits for it: a
reader that waited came back out of step with the others, and the batched visibility
statement then served fewer reads per statement (docs/benchmarks.md).

The refresh never decides what a reader may serve: the keeper of the value still refuses it
once its lifetime (counted from when it was read) has passed, whether or not a refresh is
running. Readers never await the refresh either, so its cancellation (at close) cannot reach
them. `close` cancels a running refresh and waits for it, so no task outlives its owner and
no connection is reopened behind a closed one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


class Ahead:
    """Runs `refresh` in the background when kicked, never twice at once, never after `close`."""

    def __init__(self, refresh: Callable[[], Awaitable[None]], name: str) -> None:
        self._refresh = refresh
        self._name = name
        self._task: asyncio.Task[None] | None = None
        self.closed = False
        self.runs = 0  # refreshes started (tests and benches count them)

    @property
    def running(self) -> bool:
        return self._task is not None

    def kick(self) -> None:
        """Start a refresh unless one is running (or this is closed); returns at once."""
        if self._task is not None or self.closed:
            return
        self.runs += 1
        self._task = asyncio.get_running_loop().create_task(self._run(), name=self._name)

    async def _run(self) -> None:
        try:
            await self._refresh()
        except Exception as exc:  # a failed refresh leaves the kept value to expire; readers read it then
            log.debug("%s failed: %s", self._name, exc)
        finally:
            self._task = None

    async def close(self) -> None:
        """Stop: no refresh starts after this, and a running one is cancelled and waited for."""
        self.closed = True
        task = self._task
        if task is None:
            return
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            # The refresh's own cancellation, unless this coroutine was cancelled too: then pass it on.
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise
        finally:
            self._task = None  # cancelled before it started, its own `finally` never ran
