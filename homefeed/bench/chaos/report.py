"""The chaos run's figures, as report lines and as the JSON of `--json`."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from homefeed.bench.chaos.checks import Findings
from homefeed.bench.chaos.ledger import Fault, Ledger
from homefeed.bench.chaos.metrics import headline
from homefeed.bench.stats import Stat

# A post acknowledged this soon after a fault began (or before its target was back) is "under" it.
UNDER_FAULT_S = 10.0


@dataclass
class ChaosReport:
    """Every figure of one run; the counts come first, they are the contract of `--json`."""

    posts_acked: int
    lost: int  # acknowledged, not deleted, missing from a compared feed that should have it
    duplicated: int  # (feed, post) pairs shown twice
    feeds_compared: int
    feeds_differing: int  # some page differs from the pull query's page at the same cursor
    subscriber_misses: int
    # Extras.
    posts_live: int = 0
    posts_unknown: int = 0  # createPost with no answer (connection cut): never promised
    missing_in_db: int = 0
    feeds_unreadable: int = 0
    subscribers: int = 0
    subscribers_registered: int = 0
    subscriber_expected: int = 0
    subscriber_duplicates: int = 0
    server_resyncs: int = 0
    reconnects: int = 0
    faults: list[dict[str, Any]] = field(default_factory=list)
    recovery_read_ms: Stat | None = None
    recovery_fanout_ms: Stat | None = None
    visibility_lag_ms: Stat | None = None
    visibility_lag_under_faults_ms: Stat | None = None
    not_visible_to_probe: int = 0
    ops: dict[str, int] = field(default_factory=dict)
    failures: dict[str, int] = field(default_factory=dict)
    # /metrics at the end of the run: {"api": {sample: value}, "worker": {...}}.
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    outbox_left: int = 0
    settle_seconds: float = 0.0
    minutes: float = 0.0
    graph_users: int = 0
    cast: int = 0
    threshold: int = 0
    boundary_author: int = 0
    apis: int = 0
    workers: int = 0
    own_valkey: bool = True
    lost_detail: list[dict[str, Any]] = field(default_factory=list)
    differing_detail: list[dict[str, Any]] = field(default_factory=list)
    subscriber_miss_detail: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The JSON document of `--json`."""
        return asdict(self)

    def lines(self) -> list[str]:
        """The human-readable figures."""

        def stat(name: str, s: Stat | None, what: str) -> str:
            if s is None or not s.n:
                return f"{name:<30} (no samples) {what}"
            return f"{name:<30} p50 {s.p50:8.1f}  p99 {s.p99:8.1f}  max {s.max:8.1f}   ({s.n:,} {what})"

        out = [
            f"graph: {self.graph_users:,} users, cast {self.cast:,}; {self.apis} API + {self.workers} worker"
            f" processes; threshold {self.threshold:,} (boundary author {self.boundary_author});"
            f" {self.minutes:g} min; Valkey {'owned' if self.own_valkey else 'configured (not faulted)'}",
            f"posts_acked              {self.posts_acked:>8,}   ({self.posts_live:,} not deleted;"
            f" {self.posts_unknown} createPost calls cut before an answer)",
            f"lost                     {self.lost:>8,}"
            f"   ({self.missing_in_db} acknowledged posts not in PostgreSQL)",
            f"duplicated               {self.duplicated:>8,}",
            f"feeds_compared           {self.feeds_compared:>8,}"
            f"   ({self.feeds_unreadable} could not be read)",
            f"feeds_differing          {self.feeds_differing:>8,}",
            f"subscriber_misses        {self.subscriber_misses:>8,}"
            f"   (of {self.subscriber_expected:,} deliveries"
            f" owed to {self.subscribers_registered}/{self.subscribers} subscribers; {self.server_resyncs}"
            f" RESYNCs, {self.reconnects} reconnects, {self.subscriber_duplicates} duplicate ADDED)",
            f"faults                   {len(self.faults):>8,}   ("
            + ", ".join(f"{k} {v}" for k, v in _count(self.faults).items())
            + ")",
            stat("recovery_read_ms", self.recovery_read_ms, "faults: fault -> first good read after it"),
            stat("recovery_fanout_ms", self.recovery_fanout_ms, "faults: fault -> a later post visible"),
            stat("visibility_lag_ms", self.visibility_lag_ms, "posts: ack -> in a follower's feed"),
            stat(
                "visibility_lag_under_faults_ms",
                self.visibility_lag_under_faults_ms,
                f"posts acked within {UNDER_FAULT_S:g} s of a fault",
            ),
            f"not_visible_to_probe     {self.not_visible_to_probe:>8,}   (not in the polled feed within 60 s;"
            " a later unfollow or block can explain it, the checks decide)",
            f"settle                   {self.settle_seconds:8.1f} s"
            f" (outbox drained; {self.outbox_left} jobs left)",
            "ops: " + ", ".join(f"{k} {v:,}" for k, v in sorted(self.ops.items())),
        ]
        if self.failures:
            out.append("failed calls: " + ", ".join(f"{k} {v:,}" for k, v in sorted(self.failures.items())))
        for f in self.faults:
            out.append(
                f"  fault +{f['t_s']:7.1f} s {f['kind']:<15} {f['target']:<28}"
                + (f" skipped: {f['skipped']}" if f["skipped"] else
                   f" back after {_ms(f['restored_after_ms'])}, read {_ms(f['recovery_read_ms'])},"
                   f" fan-out {_ms(f['recovery_fanout_ms'])}")
            )  # fmt: skip
        for d in self.lost_detail[:20]:
            out.append(f"  lost: {d}")
        for d in self.differing_detail[:10]:
            out.append(f"  differs: {d}")
        for d in self.subscriber_miss_detail[:10]:
            out.append(f"  subscriber miss: {d}")
        out += [f"note: {n}" for n in self.notes]
        for process, samples in self.metrics.items():
            shown = ", ".join(f"{k.removeprefix('homefeed_')} {v:g}" for k, v in headline(samples).items())
            out.append(f"/metrics of {process}: {len(samples)} samples; {shown}")
        return out


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f} ms"


def _count(faults: list[dict[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for f in faults:
        counts[f["kind"]] = counts.get(f["kind"], 0) + 1
    return counts


def near(faults: list[Fault], at: float) -> list[str]:
    """The faults around a moment: the last one before it, and any in the minute after."""
    before = [f for f in faults if f.at <= at]
    around = ([before[-1]] if before else []) + [f for f in faults if at < f.at <= at + 60]
    return [f"{f.kind} {f.target} at {f.at - at:+.1f} s" for f in around]


def build(ledger: Ledger, findings: Findings, faults_out: list[dict[str, Any]]) -> ChaosReport:
    """The counts and details from the ledger and the checks (figures set by the caller)."""
    posts = ledger.posts
    lags = [p.visible_at - p.acked_at for p in posts.values() if p.visible_at is not None]
    windows = [(f.at, (f.restored_at or f.at) + UNDER_FAULT_S) for f in ledger.faults if f.skipped is None]
    under = [
        p.visible_at - p.acked_at
        for p in posts.values()
        if p.visible_at is not None and any(lo <= p.acked_at <= hi for lo, hi in windows)
    ]
    differing = [f for f in findings.feeds if f.differing_page is not None]
    return ChaosReport(
        posts_acked=len(posts),
        lost=len(findings.lost) + len(findings.missing_in_db),
        duplicated=sum(len(v) for v in findings.duplicated.values()),
        feeds_compared=len(findings.feeds),
        feeds_differing=len(differing),
        subscriber_misses=len(findings.subscriber_misses),
        posts_live=len(findings.acked_live),
        posts_unknown=ledger.unknown_posts,
        missing_in_db=len(findings.missing_in_db),
        feeds_unreadable=sum(1 for f in findings.feeds if f.unread),
        subscriber_expected=findings.subscriber_expected,
        faults=faults_out,
        recovery_read_ms=Stat.of(
            [f["recovery_read_ms"] / 1000 for f in faults_out if f["recovery_read_ms"] is not None]
        ),
        recovery_fanout_ms=Stat.of(
            [f["recovery_fanout_ms"] / 1000 for f in faults_out if f["recovery_fanout_ms"] is not None]
        ),
        visibility_lag_ms=Stat.of(lags),
        visibility_lag_under_faults_ms=Stat.of(under),
        not_visible_to_probe=sum(1 for p in posts.values() if p.visible_at is None and not p.deleted),
        ops=dict(ledger.ops),
        failures=dict(ledger.failures),
        lost_detail=[
            {
                "post": pk,
                "author": posts[pk].author,
                "acked_at_s": round(posts[pk].acked_at - ledger.started, 2),
                "missing_from": viewers[:10],
                "missing_from_feeds": len(viewers),
                "faults": near(ledger.faults, posts[pk].acked_at),
            }
            for pk, viewers in sorted(findings.lost.items())
            if pk in posts
        ]
        + [{"post": pk, "missing_in_db": True} for pk in findings.missing_in_db],
        differing_detail=[
            {
                "viewer": f.viewer,
                "page": f.differing_page,
                "missing": sorted(set(f.expected) - set(f.api))[:10],
                "extra": sorted(set(f.api) - set(f.expected))[:10],
            }
            for f in differing[:50]
        ],
        subscriber_miss_detail=_misses_by_post(ledger, findings),
    )


def _misses_by_post(ledger: Ledger, findings: Findings) -> list[dict[str, Any]]:
    by_post: dict[int, list[int]] = {}
    for m in findings.subscriber_misses:
        by_post.setdefault(m["post"], []).append(m["subscriber"])
    return [
        {
            "post": pk,
            "author": ledger.posts[pk].author,
            "acked_at_s": round(ledger.posts[pk].acked_at - ledger.started, 2),
            "subscribers_missed": len(subs),
            "some": subs[:5],
            "faults": near(ledger.faults, ledger.posts[pk].acked_at),
        }
        for pk, subs in sorted(by_post.items())
    ]


def recoveries(ledger: Ledger) -> list[dict[str, Any]]:
    """Each fault with its recovery times: to the first good read (on the killed API's slot for
    kill-api) and to the first post acknowledged after it being seen in a follower's feed."""
    out = []
    for f in ledger.faults:
        slot = int(f.target.split()[1]) if f.kind == "kill-api" else None
        reads = [t for t, s in ledger.reads if t > f.at and (slot is None or s == slot) and
                 (f.restored_at is None or f.kind != "kill-api" or t >= f.restored_at)]  # fmt: skip
        seen = [p.visible_at for p in ledger.posts.values() if p.acked_at > f.at and p.visible_at is not None]
        out.append(
            {
                "kind": f.kind,
                "target": f.target,
                "t_s": round(f.at - ledger.started, 2),
                "at": f.at,
                "skipped": f.skipped,
                "restored_after_ms": None if f.restored_at is None else round((f.restored_at - f.at) * 1000),
                "recovery_read_ms": None if f.skipped or not reads else round((min(reads) - f.at) * 1000),
                "recovery_fanout_ms": None if f.skipped or not seen else round((min(seen) - f.at) * 1000),
            }
        )
    return out
