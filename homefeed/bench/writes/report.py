"""The fan-out bench's figures, as text and as the JSON of `--json`."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from homefeed.bench.celebrities import Celebrities
from homefeed.bench.stats import Stat


@dataclass
class FanoutReport:
    """Every figure of one run; the first seven are the contract of `--json`."""

    writes_per_s: float
    baseline_writes_per_s: float
    ordinary_post_ms: float
    celebrity_post_ms: float
    cold_rebuild_p99_ms: float
    visible_lag_p99_ms: float
    bytes_per_entry: float  # steady state: mean over a rewrite/append cycle, per entry of the bound
    # Extras (other names in the JSON).
    bulkwriter_writes_per_s: float = 0.0
    baseline_async_writes_per_s: float = 0.0
    fanout_writes: int = 0
    fanout_seconds: float = 0.0
    fanout_authors: list[dict[str, int]] = field(default_factory=list)
    ordinary_post: Stat | None = None
    celebrity_post: Stat | None = None
    ordinary_followers: int = 0
    celebrity_followers: int = 0
    cold_rebuild: Stat | None = None
    cold_home: Stat | None = None
    pull_page: Stat | None = None
    cold_followees: float = 0.0
    visible_lag: Stat | None = None
    lag_author_followers: int = 0
    lag_active_followers: int = 0
    memory_timelines: int = 0
    memory_entries_per_timeline: float = 0.0
    memory_encoding: str = ""
    rewritten_bytes_per_entry: float = 0.0  # the cycle's timelines just rebuilt (SET): its low
    sampled_bytes_per_entry: float = 0.0  # full timelines of the world as found (whatever wrote them last)
    memory_cycle_peak_bytes_per_entry: float = 0.0
    memory_cycle_rounds: int = 0
    memory_cycle_timelines: int = 0
    default_zset_bytes_per_entry: float = 0.0
    default_zset_encoding: str = ""
    graph_users: int = 0
    graph_follows: int = 0
    notes: list[str] = field(default_factory=list)
    celebrities: Celebrities | None = None

    def to_json(self) -> dict[str, Any]:
        """The JSON document of `--json`: contract keys as floats, extras beside them."""
        doc = asdict(self)
        for name in CONTRACT_KEYS:
            doc[name] = float(doc[name])
        doc["celebrities"] = self.celebrities.to_json() if self.celebrities is not None else None
        return doc

    def lines(self) -> list[str]:
        """The human-readable figures, each with its ratio to the baseline measured in this run."""
        base = self.baseline_writes_per_s or float("nan")
        out = [
            *(
                self.celebrities.lines()
                if self.celebrities is not None
                else ["!!! NO PULLED AUTHORS chosen for this run !!!"]
            ),
            f"graph: {self.graph_users:,} users, {self.graph_follows:,} follows",
            f"writes_per_s            {self.writes_per_s:>12,.0f}  /s   "
            f"{self.writes_per_s / base:5.2f}x baseline"
            f"   (real outbox->worker path, median of rounds; {self.fanout_writes:,} writes in"
            f" {self.fanout_seconds:.2f} s;"
            " target >= 200,000)",
            f"bulkwriter_writes_per_s {self.bulkwriter_writes_per_s:>12,.0f}  /s   "
            f"{self.bulkwriter_writes_per_s / base:5.2f}x baseline"
            "   (BulkWriter alone, same keys, no PostgreSQL)",
            f"baseline_writes_per_s   {self.baseline_writes_per_s:>12,.0f}  /s    1.00x"
            "            (redis-py pipeline, ZADD + ZREMRANGEBYRANK per key, same batches,"
            f" default sorted sets; asyncio client {self.baseline_async_writes_per_s:,.0f}/s)",
        ]
        if self.ordinary_post and self.celebrity_post:
            ratio = self.celebrity_post_ms / self.ordinary_post_ms if self.ordinary_post_ms else float("nan")
            out += [
                f"ordinary_post_ms        {self.ordinary_post_ms:>12.2f}  ms   1.00x"
                f"            (p99 {self.ordinary_post.p99:.2f} ms, author with {self.ordinary_followers:,}"
                " followers)",
                f"celebrity_post_ms       {self.celebrity_post_ms:>12.2f}  ms   {ratio:5.2f}x ordinary"
                f"   (p99 {self.celebrity_post.p99:.2f} ms, author with {self.celebrity_followers:,}"
                " followers; target ~1x)",
            ]
        if self.cold_rebuild and self.cold_home and self.pull_page:
            ratio = self.cold_rebuild_p99_ms / self.pull_page.p99 if self.pull_page.p99 else float("nan")
            out += [
                f"cold_rebuild_p99_ms     {self.cold_rebuild_p99_ms:>12.2f}  ms   {ratio:5.2f}x pull page p99"
                f"   (p50 {self.cold_rebuild.p50:.2f} ms over {self.cold_rebuild.n} users following"
                f" ~{self.cold_followees:.0f}; target < 20 ms)",
                f"cold_home_p99_ms        {self.cold_home.p99:>12.2f}  ms   "
                f"{self.cold_home.p99 / self.pull_page.p99 if self.pull_page.p99 else float('nan'):5.2f}x"
                f" pull page p99   (p50 {self.cold_home.p50:.2f} ms: a whole cold Feeds.home read)",
                f"pull_page_p99_ms        {self.pull_page.p99:>12.2f}  ms    1.00x"
                f"            (p50 {self.pull_page.p50:.2f} ms: 20 ids straight from PostgreSQL)",
            ]
        if self.visible_lag:
            out.append(
                f"visible_lag_p99_ms      {self.visible_lag_p99_ms:>12.2f}  ms"
                f"                  (p50 {self.visible_lag.p50:.2f} ms over {self.visible_lag.n} posts by an"
                f" author with {self.lag_author_followers:,} followers, {self.lag_active_followers:,} active;"
                " target < 1000 ms)"
            )
        ratio = (
            self.bytes_per_entry / self.default_zset_bytes_per_entry
            if self.default_zset_bytes_per_entry
            else float("nan")
        )
        out.append(
            f"bytes_per_entry         {self.bytes_per_entry:>12.2f}  B    {ratio:5.2f}x default zset"
            f"   (steady state: mean over a rewrite/append cycle of {self.memory_cycle_rounds} appends to"
            f" {self.memory_cycle_timelines} timelines, per entry of the bound, peak"
            f" {self.memory_cycle_peak_bytes_per_entry:.2f} B; default sorted set"
            f" {self.default_zset_bytes_per_entry:.1f} B, {self.default_zset_encoding}; target <= 20)"
        )
        out.append(
            f"  as rewritten          {self.rewritten_bytes_per_entry:>12.2f}  B"
            "                  (the same timelines just rebuilt, before any append: not what a service holds)"
        )
        out.append(
            f"  world's timelines     {self.sampled_bytes_per_entry:>12.2f}  B"
            f"                  ({self.memory_timelines} full timelines as found, ~"
            f"{self.memory_entries_per_timeline:.0f} entries, {self.memory_encoding})"
        )
        out += [f"note: {n}" for n in self.notes]
        return out


CONTRACT_KEYS = (
    "writes_per_s",
    "baseline_writes_per_s",
    "ordinary_post_ms",
    "celebrity_post_ms",
    "cold_rebuild_p99_ms",
    "visible_lag_p99_ms",
    "bytes_per_entry",
)
