"""Knobs of `homefeed bench read`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from homefeed.bench.celebrities import CelebrityOptions

VARIANTS = (
    "hybrid",
    "pull",
    "baseline",
    "persisted",
    "baseline-persisted",
    "ranked",
    "persisted-planned",
)
# Variants sending the feed query as an APQ hash (the fast path), and the server each runs.
PERSISTED = {"persisted": "hybrid", "baseline-persisted": "baseline", "persisted-planned": "hybrid"}
# Variants served by an app factory of the bench's own ("module:function").
FACTORIES = {"persisted-planned": "homefeed.bench.reads.planned:planned_fast_path_app"}
# Variants asking for another feed order than LATEST, and the server each runs.
ORDERED = {"ranked": ("hybrid", "RANKED")}


@dataclass(frozen=True)
class ReadOptions:
    """Knobs of `homefeed bench read` (defaults finish in about three minutes on two cores)."""

    connections: int = 32
    seconds: float = 20.0  # measured, per variant
    warmup: float = 5.0  # per variant, before its first slice
    rounds: int = 4  # slices each variant's measured seconds are split into (see the module doc)
    rewarm: float = 1.5  # warm-up before each later slice (new connections; the server is warm)
    users: int = 2000  # sampled active users
    first: int = 20
    depth: int = 3  # deeper pages a session may follow
    workers: int = 2  # API processes
    variants: tuple[str, ...] = VARIANTS
    min_users: int = 50_000  # smaller graphs are refused (the test passes a tiny number)
    server_timeout: float = 120.0
    json_path: Path | None = None
    markdown_path: Path | None = None
    chart_path: Path | None = None
    seed: int = 0
    # Also serve hybrid and pull with the configured replicas (see replica.py).
    replica: bool = False
    celebrities: CelebrityOptions = field(default_factory=CelebrityOptions)
