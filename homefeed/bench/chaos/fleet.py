"""The processes the chaos run owns: API processes, fan-out workers and (usually) Valkey.

Only what it started can be killed: a deployment's own processes are never touched.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
import time

from homefeed.bench.chaos.valkey import OwnedValkey
from homefeed.bench.errors import BenchError
from homefeed.bench.server import ServedApi, free_port
from homefeed.feed.config import Settings
from homefeed.tether import tethered


class Fleet:
    """`apis` x `homefeed serve` (no in-process worker) and `workers` x `homefeed worker`."""

    def __init__(
        self,
        settings: Settings,
        secret: str,
        env: dict[str, str],
        apis: int,
        workers: int,
        valkey: OwnedValkey | None,
    ) -> None:
        self.settings = settings
        self.secret = secret
        # Fan-out only in the workers, so killing an API process and killing a worker are two faults.
        self.env = env | {"HOMEFEED_INPROCESS_WORKER": "0"}
        self.valkey = valkey
        self.apis: list[ServedApi | None] = [None] * apis
        self.workers: list[subprocess.Popen[bytes] | None] = [None] * workers
        # Each worker slot keeps its /metrics port across restarts, so the end of a run can scrape it.
        self.metrics_ports = [free_port() for _ in range(workers)]
        self.failed_starts: list[str] = []  # API starts that failed and were tried again
        self._logs = [tempfile.TemporaryFile() for _ in range(workers)]  # noqa: SIM115  (closed in stop)

    def urls(self) -> list[tuple[int, str]]:
        """The API processes that are running: (slot, base URL)."""
        return [(i, s.url) for i, s in enumerate(self.apis) if s is not None and s.proc.poll() is None]

    async def start(self, within: float) -> None:
        """Start every API process and worker; wait until every API answers /healthz."""
        for i in range(len(self.workers)):
            self.start_worker(i)
        for i in range(len(self.apis)):
            self.apis[i] = ServedApi(self.settings, self.secret, 1, self.env)
        await asyncio.gather(*(s.wait_healthy(within) for s in self.apis if s is not None))

    async def restart_api(self, slot: int, within: float) -> None:
        """A new API process in the slot (on a new port, as behind a load balancer).

        A start that fails (PostgreSQL out of connections while the killed process's are still
        being reaped, say) is tried again until `within` runs out, as a supervisor would.
        """
        deadline = time.monotonic() + within
        while True:
            server = ServedApi(self.settings, self.secret, 1, self.env)
            try:
                await server.wait_healthy(max(5.0, deadline - time.monotonic()))
            except BenchError as exc:
                server.stop()
                self.failed_starts.append(str(exc)[-300:])
                if time.monotonic() >= deadline:
                    raise
                await asyncio.sleep(1.0)
                continue
            self.apis[slot] = server
            return

    def kill_api(self, slot: int) -> None:
        """SIGKILL the slot's API process: no shutdown, in-flight requests and sockets cut."""
        server = self.apis[slot]
        self.apis[slot] = None
        if server is not None:
            server.proc.kill()
            server.proc.wait(10)
            server.log.close()

    def start_worker(self, slot: int) -> None:
        """Start `homefeed worker` in the slot, against the same servers and settings as the APIs."""
        assert self.settings.database_url and self.settings.redis_url
        env = dict(os.environ) | self.env
        env.update(
            HOMEFEED_DATABASE_URL=self.settings.database_url,
            HOMEFEED_REDIS_URL=self.settings.redis_url,
            HOMEFEED_REDIS_PREFIX=self.settings.redis_prefix,
            HOMEFEED_DATA_DIR=str(self.settings.data_dir),
            HOMEFEED_JWT_SECRET=self.secret,
        )
        cmd = [sys.executable, "-m", "homefeed.cli.main", "worker"]
        cmd += ["--metrics-port", str(self.metrics_ports[slot])]
        log = self._logs[slot]
        self.workers[slot] = subprocess.Popen(
            cmd, env=env, stdout=log, stderr=subprocess.STDOUT, preexec_fn=tethered()
        )

    def kill_worker(self, slot: int) -> None:
        """SIGKILL the slot's worker, whatever job it holds."""
        proc = self.workers[slot]
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(10)

    def exited(self) -> list[str]:
        """Processes that died without being killed by the run, with the end of their output."""
        dead = []
        for i, proc in enumerate(self.workers):
            if proc is not None and proc.poll() is not None and proc.returncode != -9:
                self._logs[i].seek(0)
                tail = self._logs[i].read().decode(errors="replace")[-600:]
                dead.append(f"worker {i} exited with {proc.returncode}: {tail}")
        for i, server in enumerate(self.apis):
            if server is not None and server.proc.poll() is not None:
                dead.append(f"API {i} exited with {server.proc.returncode}: {server.output()[-600:]}")
        return dead

    async def heal(self, within: float) -> None:
        """Restart whatever is not running (after the traffic, before the checks)."""
        for i, proc in enumerate(self.workers):
            if proc is None or proc.poll() is not None:
                self.start_worker(i)
        await asyncio.gather(
            *(
                self.restart_api(i, within)
                for i, s in enumerate(self.apis)
                if s is None or s.proc.poll() is not None
            )
        )

    def stop(self) -> None:
        """Stop every process the run started (the APIs cleanly, the workers with SIGTERM)."""
        for proc in self.workers:
            if proc is not None and proc.poll() is None:
                proc.terminate()
        deadline = time.monotonic() + 15
        for proc in self.workers:
            if proc is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(max(0.1, deadline - time.monotonic()))
                if proc.poll() is None:
                    proc.kill()
        for server in self.apis:
            if server is not None:
                server.stop()
        for log in self._logs:
            log.close()
