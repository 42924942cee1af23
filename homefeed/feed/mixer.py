"""Merging id lists read from several sources into one authoritative run of candidates.

Each source (the viewer's timeline, each pulled author's recent list) is
bounded, so it is only authoritative down to a floor: the oldest id it
returned if it may hold or have held more, or 0 when it ends with
BOTTOM (it is complete to the beginning of history). Below the highest
floor some source may be missing posts, so candidates stop there and the next
round reads below it (from the sources again, or from PostgreSQL).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from operator import neg

from homefeed.feed.timeline.lists import BOTTOM, ListRead

_NO_FLOOR = 2**63 - 1


@dataclass(frozen=True, slots=True)
class Merged:
    candidates: list[int]  # newest first, deduplicated, all >= floor
    floor: int  # nothing below this was looked at by every source


def source_floor(read: ListRead, cursor: int | None) -> int:
    """How far down this read is authoritative."""
    # A read is newest first and BOTTOM (0) can only end it: its last id is its floor (0 when
    # it holds all history), found without scanning the list.
    ids = read.ids
    if ids:
        return ids[-1]
    # Nothing below the cursor and no bottom marker: no authority at all below it.
    return cursor if cursor is not None else _NO_FLOOR


def merge(reads: Sequence[ListRead], cursor: int | None) -> Merged:
    """Candidates every source vouches for, newest first."""
    if len(reads) == 1:
        # The usual feed (no pulled author): one read, already distinct and newest first, and
        # all of it at or above its own floor.
        ids = reads[0].ids
        if ids and ids[-1] == BOTTOM:
            return Merged(ids[:-1], 0)
        return Merged(list(ids), source_floor(reads[0], cursor))
    # source_floor inlined: this runs once per read with a dozen pulled lists.
    empty_floor = cursor if cursor is not None else _NO_FLOOR
    floor = 0
    for read in reads:
        ids = read.ids
        own = ids[-1] if ids else empty_floor
        if own > floor:
            floor = own
    # Each source is newest first, so what it has at or above the floor is a prefix of it:
    # whole (the common case) or found by bisection, never tested id by id. One set and one
    # sort of the lot measured faster than heapq.merge of the sorted sources (docs/performance-log.md).
    parts: list[int] = []
    for read in reads:
        ids = read.ids
        if ids:
            parts += ids if ids[-1] >= floor else ids[: bisect_right(ids, -floor, key=neg)]
    seen = set(parts)
    seen.discard(BOTTOM)
    return Merged(sorted(seen, reverse=True), floor)
