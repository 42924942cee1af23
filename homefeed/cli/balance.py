"""Even HTTP connections across `serve --workers N`: a process over its share hands a new one on.

Each API process accepts on its own SO_REUSEPORT socket, and the kernel picks the socket by a
hash of the connection's addresses. With thousands of clients that evens out; with a few dozen
keep-alive connections (a reverse proxy's upstream pool, a load generator) it does not: the
split is often lopsided, and the busier process answers every one of its requests later,
which the tail latency of the whole service pays for (bench read).

The processes share a table of how many connections each holds. A process that accepts a
connection while holding more than the least loaded one passes the socket to that one over a
Unix socket (SCM_RIGHTS) before reading from it, and forgets it; the other process serves it
from the first byte. A handed-over connection is never handed on again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

import uvicorn
from prometheus_client import Gauge

from homefeed.http import OneWriteHttpProtocol

log = logging.getLogger(__name__)


class Counts(Protocol):
    """Connection counts shared by the processes (a multiprocessing Array of C ints)."""

    def __getitem__(self, index: int, /) -> int: ...
    def __setitem__(self, index: int, value: int, /) -> None: ...


@dataclass
class Balance:
    """One process's part: its index, everyone's connection counts, and everyone's inbox."""

    index: int
    counts: Counts  # one per process, changed only under `lock`
    lock: AbstractContextManager[Any]
    inboxes: list[socket.socket]  # per process, the end others send connections to
    inbox: socket.socket  # this process's receiving end

    @classmethod
    def for_processes(
        cls, processes: int, counts: Counts, lock: AbstractContextManager[Any]
    ) -> list[Balance]:
        """The parts of `processes` processes (create before starting them; pass one to each)."""
        pairs = [socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM) for _ in range(processes)]
        inboxes = [send for send, _ in pairs]
        return [cls(i, counts, lock, inboxes, receive) for i, (_, receive) in enumerate(pairs)]

    def close(self) -> None:
        """Close this copy of the sockets (the starting process, once the others have theirs)."""
        for sock in (self.inbox, *self.inboxes):
            sock.close()

    def place(self) -> int:
        """Which process serves a connection accepted here: this one unless another holds fewer.

        The connection is counted for it at once, so connections accepted at the same moment
        by several processes are not all sent to the same one.
        """
        with self.lock:
            counts = self.counts
            least = min(range(len(self.inboxes)), key=counts.__getitem__)
            to = least if counts[least] < counts[self.index] else self.index
            counts[to] += 1
            return to

    def move(self, from_: int, to: int) -> None:
        """Count a connection for `to` instead of `from_`."""
        with self.lock:
            self.counts[from_] -= 1
            self.counts[to] += 1

    def release(self) -> None:
        """A connection of this process has ended."""
        with self.lock:
            self.counts[self.index] -= 1

    def hand_over(self, transport: asyncio.BaseTransport, to: int) -> bool:
        """Send the transport's socket to process `to`; False if it cannot take it right now."""
        sock = transport.get_extra_info("socket")
        if sock is None:
            return False
        try:
            socket.send_fds(self.inboxes[to], [b"c"], [sock.fileno()], socket.MSG_DONTWAIT)
        except OSError:
            return False
        return True

    def listen(self, loop: asyncio.AbstractEventLoop, adopt: Callable[[socket.socket], object]) -> None:
        """Call `adopt` with each connection another process hands to this one."""
        self.inbox.setblocking(False)

        def receive() -> None:
            while True:
                try:
                    _, fds, _, _ = socket.recv_fds(self.inbox, 16, 8)
                except BlockingIOError:
                    return
                except OSError:
                    log.exception("cannot receive a connection from another API process")
                    return
                for fd in fds:
                    adopt(socket.socket(fileno=fd))

        loop.add_reader(self.inbox.fileno(), receive)


# This process's part, set by `serve` before uvicorn starts (None: a single process).
current: Balance | None = None


class BalancedHttpProtocol(OneWriteHttpProtocol):
    """The app's HTTP protocol, counting its connections and handing excess ones over."""

    adopted = False  # set on connections another process handed over (counted for us there)
    handed_over = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        balance = current
        if balance is not None and not self.adopted:
            to = balance.place()
            if to != balance.index:
                if balance.hand_over(transport, to):
                    self.handed_over = True
                    transport.abort()  # closes this process's descriptor only: the socket lives on there
                    return
                balance.move(to, balance.index)
        super().connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.handed_over:
            return
        if current is not None:
            current.release()
        super().connection_lost(exc)

    def handle_websocket_upgrade(self) -> None:
        super().handle_websocket_upgrade()
        # The connection now belongs to a websocket protocol: it must give the count back.
        upgraded = self.transport.get_protocol()
        if current is not None and upgraded is not self:
            _release_when_lost(upgraded, current)


def _release_when_lost(protocol: asyncio.BaseProtocol, balance: Balance) -> None:
    lost = protocol.connection_lost

    def connection_lost(exc: Exception | None) -> None:
        balance.release()
        lost(exc)

    protocol.connection_lost = connection_lost  # type: ignore[method-assign]


class BalancedServer(uvicorn.Server):
    """uvicorn's server, also serving the connections other API processes hand over."""

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        part = current
        if part is None or self.should_exit:
            return
        self._adopting: set[asyncio.Task[None]] = set()
        part.listen(asyncio.get_running_loop(), self._adopt)
        Gauge(
            "homefeed_connections",
            "Connections this API process serves (HTTP and websockets), as `serve --workers N` balances them",
        ).set_function(lambda: part.counts[part.index])

    def _adopt(self, sock: socket.socket) -> None:
        task = asyncio.ensure_future(self._serve_adopted(sock))
        self._adopting.add(task)
        task.add_done_callback(self._adopting.discard)

    async def _serve_adopted(self, sock: socket.socket) -> None:
        try:
            await asyncio.get_running_loop().connect_accepted_socket(self._adopted_protocol, sock)
        except OSError:
            with contextlib.suppress(OSError):
                sock.close()
            if current is not None:
                current.release()  # it was counted for this process when handed over

    def _adopted_protocol(self) -> asyncio.Protocol:
        # As uvicorn's own startup builds each connection's protocol.
        protocol: asyncio.Protocol = self.config.http_protocol_class(  # type: ignore[call-arg]
            config=self.config, server_state=self.server_state, app_state=self.lifespan.state
        )
        if isinstance(protocol, BalancedHttpProtocol):
            protocol.adopted = True
        return protocol
