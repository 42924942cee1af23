"""A fault for tests: a task cancelled just as redis-py's write of a command completes."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest
from redis.asyncio.connection import AbstractConnection


class CancelOnWrite:
    """Cancels `target` right after the first written command that contains `word`."""

    def __init__(self, word: bytes) -> None:
        self.word = word
        self.target: asyncio.Task[object] | None = None
        self.fired = 0

    @contextmanager
    def armed(self) -> Iterator[CancelOnWrite]:
        original = AbstractConnection._send_packed_command

        async def write(conn: AbstractConnection, command: Iterable[bytes]) -> None:
            chunks = list(command)
            await original(conn, chunks)
            target = self.target
            if not self.fired and target is not None and self.word in b"".join(chunks):
                self.fired += 1
                target.cancel()  # the write is done: the task's wait_for sees both at once

        with pytest.MonkeyPatch.context() as patched:
            patched.setattr(AbstractConnection, "_send_packed_command", write)
            yield self


async def stop(task: asyncio.Task[object]) -> None:
    """End a task that may have lost its cancel (a failed test's): cancel it until it ends."""
    while not task.done():
        task.cancel()
        await asyncio.wait([task], timeout=0.05)


@dataclass(frozen=True)
class Outcome:
    fired: int  # how many times the fault cancelled the task (1: it met the command)
    ended: bool  # whether the task ended within the wait (a lost cancel leaves it running)
    cancelled: bool  # whether it ended cancelled


async def cancelled_on_write(
    word: bytes, work: Callable[[], Awaitable[object]], within: float = 5
) -> Outcome:
    """Run `work` as a task cancelled just as a command containing `word` is written; what became
    of it within `within` seconds (the task is stopped either way)."""
    with CancelOnWrite(word).armed() as fault:

        async def run() -> object:
            return await work()

        fault.target = task = asyncio.create_task(run())
        try:
            done, _ = await asyncio.wait([task], timeout=within)
        finally:
            await stop(task)
    return Outcome(fault.fired, bool(done), task.cancelled())
