"""A task cancelled while redis-py writes its command is cancelled: the cancel is never lost.

redis-py writes through asyncio.wait_for, and Python 3.11's wait_for returns the write's result
when the cancel lands just as the write completes. The fault is injected at that exact point:
the write itself cancels the task once it has gone out (real servers, single and cluster).
"""

from __future__ import annotations

import pytest

from homefeed.feed.config import Settings
from homefeed.feed.redis_client import open_redis
from tests.feed.cancel_on_write import cancelled_on_write


# INCR: the command's reply is read next. LIB-NAME: a new connection's handshake writes CLIENT
# SETINFO LIB-NAME and LIB-VER back to back, so the next await is another write, whose wait_for
# drops a cancel merely asked for again (how the live hub's subscriber still hung on a cluster).
@pytest.mark.parametrize("word", [b"INCR", b"LIB-NAME"])
async def test_a_cancel_landing_as_a_command_is_written_ends_the_task(
    settings_: Settings, word: bytes
) -> None:
    assert settings_.redis_url
    redis = await open_redis(settings_.redis_url)  # no connection yet: the first command makes one
    key = f"{settings_.redis_prefix}:cancel:{{k}}"
    writes = 0

    async def write_forever() -> None:
        nonlocal writes
        while True:
            await redis.incr(key)
            writes += 1

    try:
        outcome = await cancelled_on_write(word, write_forever)
        assert outcome.fired == 1
        # Lost, the cancel left the loop writing on: thousands of INCRs in the 5 s.
        assert outcome.ended, f"the cancel was lost: {writes} more writes"
        assert outcome.cancelled
        # A command that went out but whose reply was never read must not leave that reply to
        # the connection's next command (a GET answered with INCR's integer, and so on).
        count = int(await redis.get(key) or 0)
        assert count in (writes, writes + 1)  # the cancelled INCR ran, or was never sent
        assert await redis.incr(key) == count + 1
    finally:
        await redis.aclose()
