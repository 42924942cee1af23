"""What the chaos run did and saw, recorded as it happens; the checks and the report read it."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field


@dataclass
class AckedPost:
    """A post whose createPost answered with its id: the service promised to keep it."""

    pk: int
    author: int
    acked_at: float  # wall-clock seconds
    probe_viewer: int  # whose feed is polled until it shows there (a follower, else the author)
    visible_at: float | None = None
    deleted: bool = False  # the run deleted it (acknowledged or not)


@dataclass
class Fault:
    """One injected fault (or one that could not be injected, with the reason)."""

    kind: str  # kill-worker, kill-api, restart-valkey, flush-valkey
    target: str
    at: float
    restored_at: float | None = None  # when the killed thing was running again
    skipped: str | None = None
    recovery_read_s: float | None = None  # fault -> first successful read after it
    recovery_fanout_s: float | None = None  # fault -> first post acked after it visible to a follower


@dataclass
class Ledger:
    """Counts and events of one run, shared by the traffic, the faults and the checks."""

    started: float = field(default_factory=time.time)
    posts: dict[int, AckedPost] = field(default_factory=dict)
    reads: list[tuple[float, int]] = field(default_factory=list)  # (time, API slot) of good reads
    faults: list[Fault] = field(default_factory=list)
    ops: Counter[str] = field(default_factory=Counter)  # acknowledged calls by operation
    failures: Counter[str] = field(default_factory=Counter)  # "operation: failure"
    unknown_posts: int = 0  # createPost calls with no answer: maybe committed, never promised

    def failed(self, op: str, failure: str) -> None:
        self.failures[f"{op}: {failure}"] += 1
