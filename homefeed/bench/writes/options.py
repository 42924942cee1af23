"""Knobs of `homefeed bench fanout`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from homefeed.bench.celebrities import CelebrityOptions


@dataclass(frozen=True)
class FanoutOptions:
    """Knobs of `homefeed bench fanout` (defaults finish in a few minutes on two cores)."""

    posts: int = 40  # samples for the latency and lag figures (at least 30 for lag, 100 for cold)
    seconds: float = 6.0  # time budget of each throughput measurement
    fanout_keys: int = 120_000  # timelines (active followers of the top authors) written per round
    cold_users: int = 120
    # The baseline's sorted sets are default ones (skiplists, several times the bytes an entry of
    # a timeline): a sample of the fan-out keys is enough for a rate, and bounds the shadow copies.
    baseline_keys: int = 20_000
    memory_keys: int = 200
    lag_followers: int = 10_000  # follower count of the author whose post-to-visible lag is measured
    min_users: int = 50_000  # smaller graphs are refused (the test passes a tiny number)
    json_path: Path | None = None
    seed: int = 0
    celebrities: CelebrityOptions = field(default_factory=CelebrityOptions)
    viewers: int = 2000  # sampled active users the celebrity share is measured on
