"""Time-sortable integer ids below 2**53: exact in a double, in JavaScript and as a Redis score.

Layout: milliseconds since EPOCH (41 bits, ~69 years) shifted left by 12, plus a
12-bit sequence. The database assigns ids for live writes (see migrations); this
module mirrors the layout for synthetic data and for turning ids back into times.
"""

from __future__ import annotations

from datetime import UTC, datetime

EPOCH_MS = 1_704_067_200_000  # 2024-01-01T00:00:00Z
SEQUENCE_BITS = 12
MAX_ID = 2**53 - 1


def make_id(ms: int, sequence: int) -> int:
    """The id for a Unix time in milliseconds and a sequence number."""
    return ((ms - EPOCH_MS) << SEQUENCE_BITS) | (sequence & ((1 << SEQUENCE_BITS) - 1))


def id_ms(post_id: int) -> int:
    """The Unix time in milliseconds encoded in an id."""
    return (post_id >> SEQUENCE_BITS) + EPOCH_MS


def id_time(post_id: int) -> datetime:
    """The UTC time encoded in an id."""
    return datetime.fromtimestamp(id_ms(post_id) / 1000, tz=UTC)


def lowest_id_at(ms: int) -> int:
    """The smallest id that can be minted at a Unix time in milliseconds."""
    return make_id(ms, 0)
