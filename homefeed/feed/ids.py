"""Time-sortable integer ids below 2**53: exact in a double, in JavaScript and as a Redis score.

Layout: milliseconds since EPOCH (41 bits, ~69 years) shifted left by 12, plus 12 low
bits. For users (and other rows) the low bits are a sequence. For posts they are a 6-bit
sequence above the author's 6-bit logical shard (`shard_of(author_id)`), Instagram's
scheme: a post id alone names the shard its author's rows live on (docs/scale.md).
The database assigns ids for live writes (see migrations); this module mirrors the
layout for synthetic data and for turning ids back into times.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

EPOCH_MS = 1_704_067_200_000  # 2024-01-01T00:00:00Z
SEQUENCE_BITS = 12
SHARD_BITS = 6
LOGICAL_SHARDS = 1 << SHARD_BITS
POST_SEQUENCE_BITS = SEQUENCE_BITS - SHARD_BITS
MAX_ID = 2**53 - 1


def make_id(ms: int, sequence: int) -> int:
    """The id for a Unix time in milliseconds and a sequence number."""
    return ((ms - EPOCH_MS) << SEQUENCE_BITS) | (sequence & ((1 << SEQUENCE_BITS) - 1))


def shard_of(any_id: int) -> int:
    """The logical shard of a user id, or of a post id (its author's shard)."""
    return any_id & (LOGICAL_SHARDS - 1)


def make_post_id(ms: int, sequence: int, author_id: int) -> int:
    """A post id for a Unix time in milliseconds, a sequence number and the post's author."""
    low = ((sequence & ((1 << POST_SEQUENCE_BITS) - 1)) << SHARD_BITS) | shard_of(author_id)
    return ((ms - EPOCH_MS) << SEQUENCE_BITS) | low


def id_ms(post_id: int) -> int:
    """The Unix time in milliseconds encoded in an id."""
    return (post_id >> SEQUENCE_BITS) + EPOCH_MS


def id_time(post_id: int) -> datetime:
    """The UTC time encoded in an id."""
    # The epoch plus a timedelta: the instant datetime.fromtimestamp(id_ms / 1000, tz=UTC) gives
    # (whole milliseconds are exact either way), in about two thirds of its time; every post of
    # a feed page pays it once.
    return _EPOCH + timedelta(0, 0, 0, post_id >> SEQUENCE_BITS)


_EPOCH = datetime.fromtimestamp(EPOCH_MS / 1000, tz=UTC)


def lowest_id_at(ms: int) -> int:
    """The smallest id that can be minted at a Unix time in milliseconds."""
    return make_id(ms, 0)
