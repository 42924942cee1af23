"""Knobs of `homefeed bench chaos`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ChaosOptions:
    """Knobs of `homefeed bench chaos` (the defaults suit the 100k-user graph)."""

    minutes: float = 10.0  # of traffic under faults; settling and checks come after
    cast: int = 1000  # users who act (post, read, follow, ...); all users on a smaller graph
    subscribers: int = 200  # live subscribers, taken from the cast
    apis: int = 2  # `homefeed serve` processes (one uvicorn process each)
    workers: int = 2  # `homefeed worker` processes; the API processes run none in-process
    ops_per_second: float = 15.0  # mutations and reads together, spread over the cast
    fault_every: float = 12.0  # mean seconds between faults (exponential gaps)
    threshold: int | None = None  # celebrity threshold; default: the 3rd largest follower count
    own_valkey: bool = True  # start a Valkey of its own; False: the configured one, no Valkey faults
    check_viewers: int = 400  # feeds compared with the pull query at the end
    check_pages: int = 20  # pages of `page_size` read per compared feed, at most
    page_size: int = 50
    settle_timeout: float = 90.0  # how long the outbox may take to drain after the traffic
    server_timeout: float = 90.0  # start-up budget of each API process
    min_users: int = 1000  # smaller graphs are refused (the test passes a small number)
    json_path: Path | None = None
    seed: int = 0
