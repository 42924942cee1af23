"""The read bench's figures: per variant, the run's ratios and targets, as text, markdown and JSON."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from homefeed.bench.celebrities import Celebrities
from homefeed.bench.reads.replica import REPLICA_BASES, SUFFIX, ReplicaFigures


@dataclass
class VariantResult:
    """One variant's figures; the first five are the contract of `--json`."""

    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    requests: int = 0
    first_pages: int = 0
    deeper_pages: int = 0
    errors: int = 0
    error_sample: list[str] = field(default_factory=list)
    seconds: float = 0.0
    loadgen_cpu_s: float = 0.0  # user + system CPU of the load-generator process while measuring
    server_cpu_s: float = 0.0  # of every process of the API while measuring
    postgres_cpu_s: float = 0.0  # of the PostgreSQL backends of the API's connections (see stores.py)
    redis_cpu_s: float = 0.0  # of the whole Redis server, whoever its clients were
    machine_busy: float = 0.0  # share of all cores busy while measuring (everything on the machine)
    p99_first_ms: float = float("nan")  # first pages (no cursor) only
    p99_deeper_ms: float = float("nan")  # pages after a cursor only
    latencies_ms: list[float] = field(default_factory=list, repr=False)
    # With replicas configured: their replay lag and where the blocks were read (replica.py).
    replicas: ReplicaFigures | None = None

    def blocks_per_request(self) -> tuple[float, float]:
        """Block accesses per request on the primary and on the replicas (NaN without replicas)."""
        if self.replicas is None or not self.requests:
            return float("nan"), float("nan")
        return self.replicas.primary_blocks / self.requests, self.replicas.replica_blocks / self.requests

    @property
    def server_cpu_ms_per_request(self) -> float:
        return 1000 * self.server_cpu_s / self.requests if self.requests else float("nan")

    @property
    def postgres_cpu_ms_per_request(self) -> float:
        return 1000 * self.postgres_cpu_s / self.requests if self.requests else float("nan")

    def redis_cpu_ms_per_request(self, background_per_s: float) -> float:
        """Redis's CPU per request, less what its other clients cost it meanwhile (background)."""
        if not self.requests:
            return float("nan")
        return 1000 * max(0.0, self.redis_cpu_s - background_per_s * self.seconds) / self.requests

    def total_cpu_ms_per_request(self, background_per_s: float) -> float:
        """API + PostgreSQL + Redis CPU per request."""
        return (
            self.server_cpu_ms_per_request
            + self.postgres_cpu_ms_per_request
            + self.redis_cpu_ms_per_request(background_per_s)
        )


@dataclass
class ReadReport:
    """Every figure of one run."""

    results: dict[str, VariantResult]
    connections: int
    workers: int
    graph_users: int
    sampled_users: int
    pulled_authors: int
    snapshot_pages: int
    load_before: list[float]
    load_after: list[float]
    cores: int
    order: list[str] = field(default_factory=list)  # the variants' slices, as they were measured
    celebrities: Celebrities | None = None

    @property
    def redis_background_per_s(self) -> float:
        """Redis CPU per second spent on other clients: measured while the baseline (no store) ran."""
        base = self.results.get("baseline")
        return base.redis_cpu_s / base.seconds if base is not None and base.seconds else 0.0

    def to_json(self) -> dict[str, Any]:
        """`{"hybrid"|"pull"|"baseline": {"rps", "p50_ms", "p90_ms", "p99_ms", "max_ms", …}, "run": {…}}`."""
        doc: dict[str, Any] = {}
        for name, r in self.results.items():
            fields = asdict(r)
            fields.pop("latencies_ms")
            fields["server_cpu_ms_per_request"] = r.server_cpu_ms_per_request
            fields["postgres_cpu_ms_per_request"] = r.postgres_cpu_ms_per_request
            fields["redis_cpu_ms_per_request"] = r.redis_cpu_ms_per_request(self.redis_background_per_s)
            fields["total_cpu_ms_per_request"] = r.total_cpu_ms_per_request(self.redis_background_per_s)
            doc[name] = fields
        doc["run"] = {
            "connections": self.connections,
            "workers": self.workers,
            "graph_users": self.graph_users,
            "sampled_users": self.sampled_users,
            "pulled_authors": self.pulled_authors,
            "celebrities": self.celebrities.to_json() if self.celebrities is not None else None,
            "redis_background_cpu_per_s": self.redis_background_per_s,
            "load_before": self.load_before,
            "load_after": self.load_after,
            "cores": self.cores,
            "slices": self.order,
            "ratios": self.ratios(),
        }
        return doc

    def ratios(self) -> dict[str, float]:
        r = self.results
        out: dict[str, float] = {}
        if "hybrid" in r and "pull" in r:
            out["hybrid_p99_over_pull_p99"] = r["hybrid"].p99_ms / r["pull"].p99_ms
            out["hybrid_rps_over_pull_rps"] = r["hybrid"].rps / r["pull"].rps
        if "hybrid" in r and "baseline" in r:
            out["hybrid_rps_over_baseline_rps"] = r["hybrid"].rps / r["baseline"].rps
        for base in REPLICA_BASES:
            # The same server with replicas against without, measured in turn in one run.
            if base in r and base + SUFFIX in r:
                out[f"{base}_replica_p99_over_{base}_p99"] = r[base + SUFFIX].p99_ms / r[base].p99_ms
                out[f"{base}_replica_rps_over_{base}_rps"] = r[base + SUFFIX].rps / r[base].rps
        if "persisted" in r and "hybrid" in r:
            out["persisted_rps_over_hybrid_rps"] = r["persisted"].rps / r["hybrid"].rps
            out["persisted_p99_over_hybrid_p99"] = r["persisted"].p99_ms / r["hybrid"].p99_ms
            out["persisted_api_cpu_over_hybrid_api_cpu"] = (
                r["persisted"].server_cpu_ms_per_request / r["hybrid"].server_cpu_ms_per_request
            )
        if "ranked" in r and "hybrid" in r:
            # RANKED against LATEST on the same server: first pages rank, deeper ones read the snapshot.
            out["ranked_first_p99_over_hybrid_first_p99"] = (
                r["ranked"].p99_first_ms / r["hybrid"].p99_first_ms
            )
            out["ranked_deeper_p99_over_hybrid_deeper_p99"] = (
                r["ranked"].p99_deeper_ms / r["hybrid"].p99_deeper_ms
            )
        if "persisted" in r and "persisted-planned" in r:
            # The compiled executor against the planned one, both on the fast path.
            out["persisted_api_cpu_over_persisted_planned_api_cpu"] = (
                r["persisted"].server_cpu_ms_per_request / r["persisted-planned"].server_cpu_ms_per_request
            )
            out["persisted_rps_over_persisted_planned_rps"] = r["persisted"].rps / r["persisted-planned"].rps
        if "persisted" in r and "baseline-persisted" in r:
            out["persisted_rps_over_baseline_persisted_rps"] = (
                r["persisted"].rps / r["baseline-persisted"].rps
            )
        return out

    def checks(self) -> list[tuple[str, bool]]:
        """The targets of the read path, each with whether this run met it."""
        r, q = self.results, self.ratios()
        out: list[tuple[str, bool]] = []
        if "hybrid" in r:
            out.append((f"hybrid p99 {r['hybrid'].p99_ms:.1f} ms < 50 ms", r["hybrid"].p99_ms < 50))
        if "hybrid_p99_over_pull_p99" in q:
            v = q["hybrid_p99_over_pull_p99"]
            out.append((f"hybrid p99 / pull p99 = {v:.2f} <= 0.33", v <= 1 / 3))
        if "hybrid_rps_over_baseline_rps" in q:
            v = q["hybrid_rps_over_baseline_rps"]
            out.append((f"hybrid rps / baseline rps = {v:.2f} >= 0.70", v >= 0.7))
        if "hybrid_rps_over_pull_rps" in q:
            v = q["hybrid_rps_over_pull_rps"]
            out.append((f"hybrid rps / pull rps = {v:.2f} >= 2", v >= 2))
        # Issue 16's targets for persisted operations.
        for key, text, bound, at_most in (
            ("persisted_api_cpu_over_hybrid_api_cpu", "persisted API CPU/req / hybrid's", 0.35, True),
            ("persisted_rps_over_hybrid_rps", "persisted rps / hybrid rps", 2.5, False),
            ("persisted_p99_over_hybrid_p99", "persisted p99 / hybrid p99", 0.5, True),
            (
                "persisted_rps_over_baseline_persisted_rps",
                "persisted rps / baseline-persisted rps",
                0.9,
                False,
            ),
            # Issue 14's targets for RANKED.
            ("ranked_first_p99_over_hybrid_first_p99", "RANKED first-page p99 / LATEST's", 1.5, True),
            ("ranked_deeper_p99_over_hybrid_deeper_p99", "RANKED later-page p99 / LATEST's", 1.1, True),
        ):
            if key in q:
                v = q[key]
                out.append(
                    (
                        f"{text} = {v:.2f} {'<=' if at_most else '>='} {bound}",
                        v <= bound if at_most else v >= bound,
                    )
                )
        return out

    def celebrity_lines(self) -> list[str]:
        if self.celebrities is None:
            return [f"!!! NO PULLED AUTHORS chosen for this run ({self.pulled_authors} in the graph) !!!"]
        return self.celebrities.lines()

    def lines(self) -> list[str]:
        """The human-readable figures."""
        bg = self.redis_background_per_s
        out = [
            *self.celebrity_lines(),
            f"graph: {self.graph_users:,} users; {self.sampled_users:,} sampled active users"
            f" ({self.pulled_authors} pulled authors); homeFeed(first: 20) at"
            f" {self.connections} connections; server: --workers {self.workers}",
            f"{'variant':<18} {'rps':>8} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'max ms':>8}"
            f" {'requests':>9} {'errors':>6} {'CPU/req: API':>12} {'PG':>6} {'Redis':>6} {'total':>6}"
            f" {'loadgen CPU':>12}",
        ]
        for name, r in self.results.items():
            out.append(
                f"{name:<18} {r.rps:>8.0f} {r.p50_ms:>8.1f} {r.p90_ms:>8.1f} {r.p99_ms:>8.1f}"
                f" {r.max_ms:>8.1f} {r.requests:>9,} {r.errors:>6} {r.server_cpu_ms_per_request:>10.2f}ms"
                f" {r.postgres_cpu_ms_per_request:>6.2f} {r.redis_cpu_ms_per_request(bg):>6.2f}"
                f" {r.total_cpu_ms_per_request(bg):>6.2f} {r.loadgen_cpu_s:>6.1f} s/{r.seconds:.0f} s"
            )
        out.append(
            f"Redis CPU is the server's less its other clients' ({bg * 1000:.1f} ms/s, measured in the"
            " baseline's slices, which touch no store); PG: the API's own backends"
        )
        out += self.replica_lines()
        for text, ok in self.checks():
            out.append(f"target {'met   ' if ok else 'MISSED'} {text}")
        out.append(
            "load average before: "
            + " ".join(f"{x:.2f}" for x in self.load_before)
            + "; after: "
            + " ".join(f"{x:.2f}" for x in self.load_after)
            + f" ({self.cores} cores; the load generator shares them)"
        )
        for name, r in self.results.items():
            if r.error_sample:
                out.append(f"{name} errors, e.g.: {r.error_sample[0][:300]}")
        return out

    def replica_lines(self) -> list[str]:
        """Per variant, the replicas' replay lag and where the database's blocks were read."""
        out: list[str] = []
        for name, r in self.results.items():
            f = r.replicas
            if f is None:
                continue
            primary, replica = r.blocks_per_request()
            out.append(
                f"replicas during {name}: replay lag p50 {f.lag_p50_ms:.0f} ms, p99 {f.lag_p99_ms:.0f} ms,"
                f" max {f.lag_max_ms:.0f} ms ({f.samples} samples), at most {f.lag_max_bytes:,} bytes"
                f" behind; blocks per request: primary {primary:,.0f}, replicas {replica:,.0f}"
            )
        q = self.ratios()
        for base in REPLICA_BASES:
            p99 = q.get(f"{base}_replica_p99_over_{base}_p99")
            rps = q.get(f"{base}_replica_rps_over_{base}_rps")
            if p99 is not None and rps is not None:
                out.append(f"{base} with replicas / without (same run): p99 {p99:.2f}, rps {rps:.2f}")
        return out

    def markdown(self) -> str:
        """The figures as a markdown table."""
        rows = [
            "| variant | rps | p50 ms | p90 ms | p99 ms | max ms | requests | errors"
            " | API CPU / request | PostgreSQL | Redis | total | load generator CPU |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        bg = self.redis_background_per_s
        for name, r in self.results.items():
            rows.append(
                f"| {name} | {r.rps:,.0f} | {r.p50_ms:.1f} | {r.p90_ms:.1f} | {r.p99_ms:.1f}"
                f" | {r.max_ms:.1f} | {r.requests:,} | {r.errors} | {r.server_cpu_ms_per_request:.2f} ms"
                f" | {r.postgres_cpu_ms_per_request:.2f} ms | {r.redis_cpu_ms_per_request(bg):.2f} ms"
                f" | {r.total_cpu_ms_per_request(bg):.2f} ms | {r.loadgen_cpu_s:.1f} s in {r.seconds:.0f} s |"
            )
        rows.append("")
        rows += [f"- {line}" for line in self.celebrity_lines()]
        rows += [f"- {line}" for line in self.replica_lines()]
        rows += [f"- {'met' if ok else '**missed**'}: {text}" for text, ok in self.checks()]
        rows.append(
            f"- {self.connections} connections, `--workers {self.workers}`, {self.sampled_users:,} users"
            f" of {self.graph_users:,}; load average before {self.load_before[0]:.2f},"
            f" after {self.load_after[0]:.2f} on {self.cores} cores"
        )
        return "\n".join(rows) + "\n"
