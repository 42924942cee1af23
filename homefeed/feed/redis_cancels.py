"""Cancels that redis-py's writes lose on Python 3.11, raised after all.

redis-py (8.1, redis/asyncio/connection.py, `AbstractConnection.send_packed_command`) writes
every command with `asyncio.wait_for(write, socket_timeout)`, and since redis-py 8 every
client has a socket timeout. Python 3.11's wait_for returns the write's result when its task
is cancelled just as the write completes: the cancel is lost (3.12's wait_for, built on
asyncio.timeout, keeps it). A graphql-ws subscription cancelled so while its subscriber
attached (the hub's SSUBSCRIBE, or the handshake of the connection it opened) went on to wait
for events with the cancel pending, and the connection's teardown waited for it forever; any
task stopped during a Redis command could run on likewise.

Each write is wrapped here: when a cancel was asked for while it ran and nothing was raised, the
wrapper raises CancelledError itself. Asking for the cancel again instead (Task.cancel) is not
enough: it lands at the next await, and when that is the next command's write (a connection's
handshake writes two commands in a row) the same wait_for drops it there.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from redis.asyncio.connection import AbstractConnection

Send = Callable[..., Awaitable[None]]


def keeping_cancels(send: Send) -> Send:
    """`send` (send_packed_command) raising CancelledError for a cancel it swallowed."""

    async def send_packed_command(
        conn: AbstractConnection, command: bytes | str | Iterable[bytes], *args: Any, **kwargs: Any
    ) -> None:
        task = asyncio.current_task()
        if task is None:
            return await send(conn, command, *args, **kwargs)
        asked = task.cancelling()
        try:
            await send(conn, command, *args, **kwargs)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            # wait_for raised the write's error in the cancel's place (redis-py has dropped the
            # connection for it): a caller that handles the error would carry on.
            if task.cancelling() > asked:
                raise asyncio.CancelledError from exc
            raise
        if task.cancelling() > asked:
            # The command went out and its reply will not be read: dropped, the connection
            # cannot hand that reply to its next command (as redis-py drops one whose read is
            # cancelled). Closing it does not wait, so nothing can be interrupted here.
            await conn.disconnect(nowait=True)
            raise asyncio.CancelledError

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
