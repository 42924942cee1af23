"""Why a bench cannot run."""

from __future__ import annotations

# Each bench refuses a graph too small to say anything and ends with this.
SEED_HINT = "run `homefeed seed --users 100000` first"


class BenchError(Exception):
    """The bench cannot run; the message says why and what to do."""
