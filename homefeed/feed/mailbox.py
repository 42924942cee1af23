"""A bounded queue with one reader, small enough to keep per idle live subscriber.

asyncio.Queue allocates three deques and an Event (a fourth) up front, about 6.5 KB per queue
(bench live-heap), though a live subscriber's queue is empty nearly all the time and only its
own task reads it. This keeps a list, created on the first item, and at most one waiting future.
"""

from __future__ import annotations

import asyncio
from typing import Generic, TypeVar

T = TypeVar("T")


class Mailbox(Generic[T]):
    """asyncio.Queue's put_nowait/get/get_nowait/empty/qsize, for a single reader."""

    __slots__ = ("_items", "_maxsize", "_waiter")

    def __init__(self, maxsize: int) -> None:
        self._maxsize = maxsize
        self._items: list[T] | None = None
        self._waiter: asyncio.Future[None] | None = None

    def qsize(self) -> int:
        """How many items wait."""
        return len(self._items) if self._items else 0

    def empty(self) -> bool:
        """Whether nothing waits."""
        return not self._items

    def put_nowait(self, item: T) -> None:
        """Add item at the end; asyncio.QueueFull if maxsize items wait already."""
        if self._items is None:
            self._items = []
        elif len(self._items) >= self._maxsize:
            raise asyncio.QueueFull
        self._items.append(item)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def get_nowait(self) -> T:
        """The first item, taken out; asyncio.QueueEmpty if none waits."""
        if not self._items:
            raise asyncio.QueueEmpty
        item = self._items.pop(0)
        if not self._items:
            self._items = None
        return item

    async def get(self) -> T:
        """The first item, taken out, waiting for one."""
        while not self._items:
            if self._waiter is not None:
                raise RuntimeError("a Mailbox has a single reader")
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self.get_nowait()
