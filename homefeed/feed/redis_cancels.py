"""Cancels that redis-py's writes lose on Python 3.11, asked for again.

redis-py (8.1, redis/asyncio/connection.py, `AbstractConnection.send_packed_command`) writes
every command with `asyncio.wait_for(write, socket_timeout)`, and since redis-py 8 every
client has a socket timeout. Python 3.11's wait_for returns the write's result when its task
is cancelled just as the write completes: the cancel is lost (3.12's wait_for, built on
asyncio.timeout, keeps it). A graphql-ws subscription cancelled so while its subscriber
attached (the hub's SUBSCRIBE, or the cluster's slot map read) went on to wait for events with
the cancel pending, and the connection's teardown waited for it forever; any task stopped
during a Redis command could run on likewise.

Each write is wrapped here: a cancel asked for while it ran, neither raised nor taken back,
is asked for again, so it lands at the task's next await (normally the command's reply,
where redis-py drops the connection as for any cancel there), as if it had come a moment later.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from redis.asyncio.connection import AbstractConnection

Send = Callable[..., Awaitable[None]]


def keeping_cancels(send: Send) -> Send:
    """`send` (send_packed_command) with a cancel it swallowed asked for again."""

    async def send_packed_command(
        conn: AbstractConnection, command: bytes | str | Iterable[bytes], *args: Any, **kwargs: Any
    ) -> None:
        task = asyncio.current_task()
        asked = task.cancelling() if task is not None else 0
        raised = False
        try:
            await send(conn, command, *args, **kwargs)
        except asyncio.CancelledError:
            raised = True
            raise
        finally:
            # Also when the write failed instead (wait_for then raises the write's error): the
            # caller may handle that error and carry on.
            if task is not None and not raised and task.cancelling() > asked:
                task.uncancel()  # asked for once, counted once
                task.cancel()

    send_packed_command.keeps_cancels = True  # type: ignore[attr-defined]
    return send_packed_command


def install() -> None:
    """Wrap redis-py's command writes, once per process; a no-op where wait_for keeps cancels."""
    if sys.version_info >= (3, 12):
        return
    current = AbstractConnection.send_packed_command
    if getattr(current, "keeps_cancels", False):
        return
    # Every connection class (TCP, TLS, Unix socket; single server or a cluster's nodes) inherits
    # it, and a cluster client takes no connection class of ours.
    setattr(AbstractConnection, "send_packed_command", keeping_cancels(current))  # noqa: B010
