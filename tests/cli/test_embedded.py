"""Embedded Valkey is shared by the processes using one data dir; the last one stops it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import redis

from homefeed.cli.embedded import start_valkey

ATTACH = """
import sys
from pathlib import Path
import redis
from homefeed.cli.embedded import start_valkey
v = start_valkey(Path(sys.argv[1]))
redis.Redis.from_url(v.url).set("from-child", 1)
print(v.url)
v.stop()
"""


def test_a_second_process_shares_the_server_and_leaving_does_not_stop_it(tmp_path: Path) -> None:
    first = start_valkey(tmp_path)
    try:
        child = subprocess.run(
            [sys.executable, "-c", ATTACH, str(tmp_path)], capture_output=True, text=True, timeout=60
        )
        assert child.returncode == 0, child.stderr
        assert child.stdout.strip() == first.url  # the same server, not a second one
        assert redis.Redis.from_url(first.url).get("from-child") == b"1"  # still up after it left
    finally:
        first.stop()
    with pytest.raises(redis.ConnectionError):
        redis.Redis.from_url(first.url, socket_connect_timeout=0.5).ping()


def test_a_server_left_by_a_killed_process_is_replaced(tmp_path: Path) -> None:
    orphan = start_valkey(tmp_path)
    # Its owner vanished without leaving: no live process is registered any more.
    (tmp_path / "valkey" / "users").write_text("999999999")
    fresh = start_valkey(tmp_path)
    try:
        assert redis.Redis.from_url(fresh.url).ping()
        if orphan.url != fresh.url:
            with pytest.raises(redis.ConnectionError):
                redis.Redis.from_url(orphan.url, socket_connect_timeout=0.5).ping()
    finally:
        fresh.stop()
