"""A task cancelled while redis-py writes its command is cancelled: the cancel is never lost.

redis-py writes through asyncio.wait_for, and Python 3.11's wait_for returns the write's result
when the cancel lands just as the write completes. The fault is injected at that exact point:
the write itself cancels the task once it has gone out (real servers, single and cluster).
"""

from __future__ import annotations

import asyncio

from homefeed.feed.config import Settings
from homefeed.feed.redis_client import RedisClient
from tests.feed.cancel_on_write import CancelOnWrite, stop


async def test_a_cancel_landing_as_a_command_is_written_ends_the_task(
    redis: RedisClient, settings_: Settings
) -> None:
    key = f"{settings_.redis_prefix}:cancel:{{k}}"
    writes = 0

    async def write_forever() -> None:
        nonlocal writes
        while True:
            await redis.incr(key)
            writes += 1

    await redis.ping()  # connected (on a cluster: the slot map read) before the fault is armed
    with CancelOnWrite(b"INCR").armed() as fault:
        fault.target = task = asyncio.create_task(write_forever())
        try:
            done, _ = await asyncio.wait([task], timeout=5)
        finally:
            await stop(task)
    assert fault.fired == 1
    # Lost, the cancel left the loop writing on: thousands of INCRs in the 5 s.
    assert done, f"the cancel was lost: {writes} more writes"
    assert task.cancelled()
    # The INCR went out, its reply was never read: the connection it was left on must not hand
    # that reply to the next command (it would answer a GET with an integer).
    assert int(await redis.get(key) or 0) == writes + 1
    assert await redis.incr(key) == writes + 2
