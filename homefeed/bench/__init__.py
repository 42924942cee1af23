"""Benchmarks on the seeded graph: `homefeed bench fanout | live | read`."""

from __future__ import annotations


class BenchError(Exception):
    """The bench cannot run; the message says why and what to do."""
