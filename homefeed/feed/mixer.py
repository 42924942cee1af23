"""Merging id lists read from several sources into one authoritative run of candidates.

Each source (the viewer's timeline, each pulled author's recent list) is
bounded, so it is only authoritative down to a floor: the oldest id it
returned if it may hold or have held more, or 0 when it ends with
BOTTOM (it is complete to the beginning of history). Below the highest
floor some source may be missing posts, so candidates stop there and the next
round reads below it (from the sources again, or from PostgreSQL).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from homefeed.feed.timeline.lists import BOTTOM, ListRead


@dataclass(frozen=True, slots=True)
class Merged:
    candidates: list[int]  # newest first, deduplicated, all >= floor
    floor: int  # nothing below this was looked at by every source


def source_floor(read: ListRead, cursor: int | None) -> int:
    """How far down this read is authoritative."""
    if BOTTOM in read.ids:
        return 0
    if read.ids:
        return min(read.ids)
    # Nothing below the cursor and no bottom marker: no authority at all below it.
    return cursor if cursor is not None else 2**63 - 1


def merge(reads: Sequence[ListRead], cursor: int | None) -> Merged:
    """Candidates every source vouches for, newest first."""
    if len(reads) == 1:
        # The usual feed (no pulled author): one read, already distinct and newest first, and
        # all of it at or above its own floor.
        ids = reads[0].ids
        if ids and ids[-1] == BOTTOM:
            return Merged(ids[:-1], 0)
        return Merged(list(ids), source_floor(reads[0], cursor))
    floor = max((source_floor(r, cursor) for r in reads), default=0)
    seen: set[int] = set()
    for read in reads:
        seen.update(i for i in read.ids if i >= floor and i != BOTTOM)
    return Merged(sorted(seen, reverse=True), floor)
