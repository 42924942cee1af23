"""The live bench's figures from what the load generator saw."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from homefeed.bench.live.api import LEGACY_WS, TRANSPORT_WS
from homefeed.bench.live.base import Author, BenchBase
from homefeed.bench.live.load import Arrivals
from homefeed.bench.live.report import LiveReport
from homefeed.bench.stats import Stat


class Figures(BenchBase):
    """Lags per author and protocol, deliveries and misses, per post."""

    def _report(
        self,
        subs: Sequence[int],
        sees: dict[str, set[int]],
        protocols: Sequence[str],
        posts: Sequence[tuple[str, str, float]],
        arrivals: Arrivals,
        create_s: Sequence[float],
        ordinary: Author,
        celebrity: Author,
        threshold: int,
        selection: str,
        both: int,
    ) -> LiveReport:
        lags: dict[str, list[float]] = {"ordinary": [], "celebrity": []}
        by_protocol: dict[str, list[float]] = {TRANSPORT_WS: [], LEGACY_WS: []}
        missed = {"ordinary": 0, "celebrity": 0}
        expected = delivered = duplicates = 0
        per_post: list[dict[str, Any]] = []
        for (post_id, kind, began_at), create in zip(posts, create_s, strict=True):
            first: dict[int, float] = {}
            for index, at in arrivals.added.get(post_id, []):
                if index in first:
                    duplicates += 1
                else:
                    first[index] = at
            for index in sees[kind]:
                expected += 1
                if index in first:
                    delivered += 1
                    lag = first[index] - began_at
                    lags[kind].append(lag)
                    by_protocol[protocols[index]].append(lag)
                else:
                    missed[kind] += 1
            mine = Stat.of([first[i] - began_at for i in sees[kind] if i in first])
            per_post.append(
                {
                    "kind": kind,
                    "create_ms": round(create * 1000, 1),
                    "p50_ms": round(mine.p50, 1),
                    "min_ms": round(
                        min((first[i] - began_at for i in sees[kind] if i in first), default=0) * 1000, 1
                    ),
                    "max_ms": round(mine.max, 1),
                    "delivered": mine.n,
                    "expected": len(sees[kind]),
                }
            )
        counts = {p: sum(1 for x in protocols if x == p) for p in (TRANSPORT_WS, LEGACY_WS)}
        if arrivals.closed_early:
            self.notes.append(f"{arrivals.closed_early} subscriber sockets closed before the end")
        for line in arrivals.failed[:5]:
            if line not in self.notes:
                self.notes.append(line)
        return LiveReport(
            subscribers=len(subs) - len(arrivals.failed),
            pubsub_connections=0,
            rss_per_subscription_kb=0.0,
            lag_ms={k: Stat.of(v) for k, v in lags.items()},
            missed=sum(missed.values()),
            expected=expected,
            delivered=delivered,
            missed_by_kind=missed,
            duplicates=duplicates,
            resyncs=arrivals.resyncs,
            selection=selection,
            follow_both=both,
            protocols={p: n for p, n in counts.items() if n},
            lag_ms_by_protocol={p: Stat.of(v) for p, v in by_protocol.items() if v},
            create_post_ms=Stat.of(create_s),
            per_post=per_post,
            posts={k: sum(1 for _, kind, _ in posts if kind == k) for k in ("ordinary", "celebrity")},
            ordinary_author=ordinary.id,
            ordinary_followers=ordinary.followers,
            celebrity_author=celebrity.id,
            celebrity_followers=celebrity.followers,
            threshold=threshold,
        )
