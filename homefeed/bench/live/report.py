"""The live bench's figures, as text and as the JSON of `--json`."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from homefeed.bench.stats import Stat


@dataclass
class LiveReport:
    """Every figure of one run; the first five are the contract of `--json`."""

    subscribers: int
    pubsub_connections: int
    rss_per_subscription_kb: float
    lag_ms: dict[str, Stat]  # "ordinary", "celebrity"
    missed: int
    # Extras.
    expected: int = 0
    delivered: int = 0
    missed_by_kind: dict[str, int] = field(default_factory=dict)
    duplicates: int = 0
    resyncs: int = 0
    failed_connections: int = 0
    selection: str = ""  # "both" (every subscriber follows both authors) or "mixed"
    follow_both: int = 0
    protocols: dict[str, int] = field(default_factory=dict)
    lag_ms_by_protocol: dict[str, Stat] = field(default_factory=dict)
    create_post_ms: Stat | None = None
    compression: bool = True
    per_post: list[dict[str, Any]] = field(default_factory=list)  # kind, create_ms, lag p50/max, delivered
    posts: dict[str, int] = field(default_factory=dict)
    ordinary_author: int = 0
    ordinary_followers: int = 0
    celebrity_author: int = 0
    celebrity_followers: int = 0
    threshold: int = 0
    server_processes: int = 0  # API processes (uvicorn workers), each with its hub and fan-out worker
    pubsub_connections_total: int = 0
    server_cpu_ms_per_post: float = 0.0  # includes the gap between posts (an idle server uses ~0)
    # With --worker-apart fan-out runs in a process of its own: its CPU, out of the server's.
    worker_apart: bool = False
    fanout_worker_cpu_ms_per_post: float = 0.0
    load_generator_cpu_ms_per_post: float = 0.0
    # Server CPU per post over deliveries per post: an upper bound per delivery, since it includes
    # createPost and the fan-out to every follower.
    server_cpu_us_per_delivery: float = 0.0
    # The server's CPU with every subscription idle (keepalive pings, the hub's periodic re-read
    # of relationships), and the per-post figures less that rate over the posting time.
    server_idle_cpu_ms_per_s: float = 0.0
    server_cpu_ms_per_post_above_idle: float = 0.0
    server_cpu_us_per_delivery_above_idle: float = 0.0
    load_generator_busy: float = 0.0  # its CPU per post over a post's delivery window (median)
    document: str = "render-once"  # or "per-subscriber": the subscription document's path
    rss_before_mb: float = 0.0
    rss_after_mb: float = 0.0
    connect_seconds: float = 0.0
    graph_users: int = 0
    load_average: list[float] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The JSON document of `--json`."""
        return asdict(self)

    def lines(self) -> list[str]:
        """The human-readable figures."""
        target = "target p99 < 1000 ms"
        out = [
            f"graph: {self.graph_users:,} users; server: {self.server_processes} API process(es),"
            f" celebrity threshold {self.threshold:,}",
            f"subscribers               {self.subscribers:>8,}"
            f"        ({', '.join(f'{n:,} {p}' for p, n in self.protocols.items())};"
            f" {self.failed_connections} failed to connect; connected in {self.connect_seconds:.1f} s;"
            f" selection: {self.selection}, {self.follow_both:,} follow both)",
            f"pubsub_connections        {self.pubsub_connections:>8}"
            f"        (held by the server's processes; {self.pubsub_connections_total} on the Redis"
            " server in all; target: one per API process)",
            f"rss_per_subscription_kb   {self.rss_per_subscription_kb:>8.1f}  KB"
            f"    (server RSS {self.rss_before_mb:.1f} MB idle -> {self.rss_after_mb:.1f} MB with"
            f" {self.subscribers:,} idle subscriptions)",
        ]
        for kind, who, followers in (
            ("ordinary", self.ordinary_author, self.ordinary_followers),
            ("celebrity", self.celebrity_author, self.celebrity_followers),
        ):
            stat = self.lag_ms.get(kind)
            if stat is None:
                continue
            mode = "pushed" if kind == "ordinary" else "pulled"
            out.append(
                f"lag_ms {kind:<10}  p50 {stat.p50:8.1f}  p99 {stat.p99:8.1f}  max {stat.max:8.1f}"
                f"   ({stat.n:,} deliveries of {self.posts.get(kind, 0)} posts by user {who},"
                f" {followers:,} followers, {mode}; {target})"
            )
        for proto, stat in self.lag_ms_by_protocol.items():
            out.append(
                f"lag_ms {proto:<20}  p50 {stat.p50:8.1f}  p99 {stat.p99:8.1f}  max {stat.max:8.1f}"
                f"   ({stat.n:,} deliveries)"
            )
        fanout = (
            f"fan-out apart: {self.fanout_worker_cpu_ms_per_post:.1f} ms in its worker"
            if self.worker_apart
            else "fan-out"
        )
        out.append(
            f"server_cpu_ms_per_post    {self.server_cpu_ms_per_post:8.1f}"
            f"        (all API processes: createPost, {fanout}, {self.subscribers:,} deliveries;"
            f" load generator {self.load_generator_cpu_ms_per_post:.1f} ms; unlike the lag, not inflated by"
            " other processes)"
        )
        out.append(
            f"server_cpu_us_per_delivery {self.server_cpu_us_per_delivery:7.1f}"
            f"        (the above over {self.delivered / max(1, sum(self.posts.values())):,.0f} deliveries per"
            f" post: an upper bound, with createPost{'' if self.worker_apart else ' and fan-out'};"
            f" document: {self.document}; load generator busy"
            f" {self.load_generator_busy:.0%} of a post's delivery window)"
        )
        out.append(
            f"server_cpu_us_per_delivery_above_idle {self.server_cpu_us_per_delivery_above_idle:7.1f}"
            f"  ({self.server_cpu_ms_per_post_above_idle:.1f} ms per post above the idle server's"
            f" {self.server_idle_cpu_ms_per_s:.1f} ms of CPU per second)"
        )
        if self.create_post_ms is not None:
            out.append(
                f"create_post_ms            p50 {self.create_post_ms.p50:8.1f}"
                f"  p99 {self.create_post_ms.p99:8.1f}   (the HTTP round trip each lag starts with)"
            )
        out.append(
            f"missed                    {self.missed:>8,}"
            f"        (delivered {self.delivered:,} of {self.expected:,} expected"
            + "".join(f"; {k} {v:,}" for k, v in self.missed_by_kind.items())
            + f"; {self.duplicates} duplicates, {self.resyncs} RESYNCs)"
        )
        if self.load_average:
            out.append("load average at the end: " + " ".join(f"{x:.2f}" for x in self.load_average))
        out += [f"note: {n}" for n in self.notes]
        return out
