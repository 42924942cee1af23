"""Latency distributions and percentiles, as the benches report them."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass
class Stat:
    """A latency distribution in milliseconds."""

    n: int
    p50: float
    p99: float
    max: float

    @classmethod
    def of(cls, samples_s: Sequence[float]) -> Stat:
        ms = sorted(s * 1000 for s in samples_s)
        if not ms:
            return cls(0, float("nan"), float("nan"), float("nan"))
        return cls(len(ms), statistics.median(ms), nearest_rank(ms, 0.99), ms[-1])


def nearest_rank(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile: with fewer than 100 samples the p99 is the maximum."""
    index = max(0, min(len(sorted_values) - 1, int(-(-q * len(sorted_values) // 1)) - 1))
    return sorted_values[index]


def interpolated(ms: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) by linear interpolation, NaN without samples."""
    return float(np.percentile(np.asarray(ms), q)) if ms else float("nan")
