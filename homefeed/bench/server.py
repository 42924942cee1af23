"""`homefeed serve` as a child process tree, for benchmarks that drive the real API from outside."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import psutil

from homefeed.bench.errors import BenchError
from homefeed.feed.config import Settings
from homefeed.tether import tethered


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class ServedApi:
    """The API on a free port, against `settings`' servers, with extra environment.

    `app` names another app factory ("module:function") for `homefeed serve` to run the same
    way, as the read bench's baseline does.
    """

    def __init__(
        self,
        settings: Settings,
        secret: str,
        workers: int,
        env: dict[str, str],
        app: str | None = None,
        *,
        worker_apart: bool = False,
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.worker_count = workers
        assert settings.database_url and settings.redis_url
        full = dict(os.environ)
        full.update(
            HOMEFEED_DATABASE_URL=settings.database_url,
            HOMEFEED_REDIS_URL=settings.redis_url,
            HOMEFEED_REDIS_PREFIX=settings.redis_prefix,
            HOMEFEED_DATA_DIR=str(settings.data_dir),
            HOMEFEED_JWT_SECRET=secret,
            # Benchmarks drive many simulated users from one address, as fast as the API goes:
            # they measure the API, not its query limits (which one bench may turn back on in env).
            HOMEFEED_QUERY_RATE_LIMIT="0",
            HOMEFEED_ANON_RATE_LIMIT="0",
        )
        full.update(env)
        self.log = tempfile.TemporaryFile()  # noqa: SIM115  (closed in stop)
        # With worker_apart, fan-out runs in a `homefeed worker` process of its own, so the API
        # processes' CPU is what serving costs (a benchmark then measures the two apart).
        self.worker: subprocess.Popen[bytes] | None = None
        if worker_apart:
            full["HOMEFEED_INPROCESS_WORKER"] = "0"
            worker_cmd = [sys.executable, "-m", "homefeed.cli.main", "worker"]
            self.worker = subprocess.Popen(
                worker_cmd, env=full, stdout=self.log, stderr=subprocess.STDOUT, preexec_fn=tethered()
            )
        cmd = [sys.executable, "-m", "homefeed.cli.main", "serve", "--port", str(self.port)]
        cmd += ["--workers", str(workers), "--log-level", "warning"]
        if app is not None:
            cmd += ["--app", app]
        # Tethered: a bench killed outright takes its servers with it (their own processes are
        # tethered to them in turn), rather than leaving them up, holding ports and connections.
        self.proc = subprocess.Popen(
            cmd, env=full, stdout=self.log, stderr=subprocess.STDOUT, preexec_fn=tethered()
        )

    def output(self) -> str:
        """The end of what the server printed."""
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-4000:]

    async def wait_healthy(self, within: float) -> None:
        """Until /healthz answers 200 and every worker process is up; BenchError otherwise."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(f"the API process exited with {self.proc.returncode}:\n{self.output()}")
            try:
                # Every worker process must be up, or the first seconds measure start-up (with
                # one worker, uvicorn serves from the root process itself).
                healthy = await asyncio.to_thread(_status, self.url + "/healthz") == 200
                if healthy and (self.worker_count == 1 or len(self.workers()) >= self.worker_count):
                    return
            except OSError:
                pass
            await asyncio.sleep(0.2)
        raise BenchError(f"the API did not answer /healthz within {within:.0f} s:\n{self.output()}")

    def processes(self) -> list[psutil.Process]:
        """The server's process and its descendants."""
        return _tree(self.proc.pid)

    def workers(self) -> list[psutil.Process]:
        """The uvicorn worker processes (the ones that serve)."""
        found = []
        for p in self.processes():
            with contextlib.suppress(psutil.Error):
                if "spawn_main" in " ".join(p.cmdline()):
                    found.append(p)
        return found

    def rss(self) -> int:
        """Resident memory of all the server's processes, in bytes."""
        total = 0
        for p in self.processes():
            with contextlib.suppress(psutil.Error):
                total += p.memory_info().rss
        return total

    def cpu_seconds(self) -> float:
        """CPU time (user + system) of the server's processes so far."""
        return _cpu_seconds(self.processes())

    def worker_processes(self) -> list[psutil.Process]:
        """The separate fan-out worker's process and its descendants (none without one)."""
        return [] if self.worker is None else _tree(self.worker.pid)

    def every_process(self) -> list[psutil.Process]:
        """Every process this server started: the API's and the separate worker's."""
        return [*self.processes(), *self.worker_processes()]

    def worker_cpu_seconds(self) -> float:
        """CPU time of the separate fan-out worker's processes (0 without one)."""
        return _cpu_seconds(self.worker_processes())

    def local_addresses(self) -> set[str]:
        """The server's TCP endpoints (ip:port), to tell its connections from others'."""
        found: set[str] = set()
        for p in self.processes():
            with contextlib.suppress(psutil.Error):
                for c in p.net_connections(kind="tcp"):
                    if c.laddr:
                        found.add(f"{c.laddr.ip}:{c.laddr.port}")
        return found

    def stop(self) -> None:
        """SIGINT (a clean shutdown), then kill whatever is left after 20 s."""
        if self.worker is not None and self.worker.poll() is None:
            self.worker.send_signal(signal.SIGINT)
            try:
                self.worker.wait(20)
            except subprocess.TimeoutExpired:
                self.worker.kill()
                self.worker.wait(10)
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                for p in reversed(self.processes()):
                    with contextlib.suppress(psutil.Error):
                        p.kill()
                self.proc.wait(10)
        self.log.close()


def _status(url: str) -> int:
    with urllib.request.urlopen(url, timeout=2.0) as response:
        status: int = response.status
        return status


def _tree(pid: int) -> list[psutil.Process]:
    """A process and its descendants (none if it has gone)."""
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def _cpu_seconds(processes: list[psutil.Process]) -> float:
    """CPU time (user + system) of these processes so far, skipping any that have gone."""
    total = 0.0
    for p in processes:
        with contextlib.suppress(psutil.Error):
            times = p.cpu_times()
            total += times.user + times.system
    return total
