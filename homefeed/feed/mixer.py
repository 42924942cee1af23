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

import numpy as np

from homefeed.feed.timeline.encoding import Blob
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


def _highest_floor(reads: Sequence[ListRead], cursor: int | None) -> int:
    """The highest of the reads' source_floor values, in one pass (it runs once per read)."""
    empty_floor = cursor if cursor is not None else _NO_FLOOR
    floor = 0
    for read in reads:
        ids = read.ids
        own = ids[-1] if ids else empty_floor
        if own > floor:
            floor = own
    return floor


def merge(reads: Sequence[ListRead], cursor: int | None) -> Merged:
    """Candidates every source vouches for, newest first."""
    if len(reads) == 1:
        # The usual feed (no pulled author): one read, already distinct and newest first, and
        # all of it at or above its own floor.
        ids = reads[0].ids
        if ids and ids[-1] == BOTTOM:
            return Merged(ids[:-1], 0)
        return Merged(list(ids), source_floor(reads[0], cursor))
    floor = _highest_floor(reads, cursor)
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


def window_of(timeline: Blob, pulled: Sequence[ListRead], limit: int, lowest: int) -> tuple[list[int], int]:
    """What `merge` gives, down to `lowest`, of the timeline's newest `limit` ids and the pulled
    lists' (each a whole list, newest first, as kept): the ids at or above the floor and
    `lowest`, newest first, and the floor.

    The RANKED feed's candidates (Feeds.window) are a few hundred ids of lists of up to 800:
    each source's floor is looked up at its place, and only the ids above the cut are copied.
    Building every `limit`-long read (a Python int per id) and merging those took about three
    times as long (docs/benchmarks.md).
    """
    ids = timeline.ids
    n = len(ids)
    # As `below` reads it: BOTTOM ends a whole list shorter than the read, else the oldest id read.
    if timeline.whole and n < limit:
        floor = BOTTOM
    else:
        floor = int(ids[n - limit if n > limit else 0]) if n else _NO_FLOOR
    for read in pulled:
        listed = read.ids
        own = listed[min(limit, len(listed)) - 1] if listed else _NO_FLOOR
        if own > floor:
            floor = own
    cut = max(floor, lowest, BOTTOM + 1)
    merged = ids[int(np.searchsorted(ids, cut)) :]  # ascending, distinct
    extra: list[int] = []
    for read in pulled:
        listed = read.ids
        if listed and listed[0] >= cut:
            extra += listed[: bisect_right(listed, -cut, key=neg)]
    if extra:
        merged = np.concatenate((merged, np.asarray(extra, dtype=np.int64)))
        merged.sort()
        merged = merged[np.concatenate(([True], merged[1:] != merged[:-1]))]
    newest_first: list[int] = merged[::-1].tolist()
    return newest_first, floor


def merge_kept(reads: Sequence[ListRead], kept: Sequence[ListRead], cursor: int | None, limit: int) -> Merged:
    """merge(reads + [each kept whole list cut below the cursor to `limit` ids]), without the cuts.

    A pulled author's kept list is the whole list, newest first; a read wants at most `limit` of
    it below the cursor, and usually none of it at all (a celebrity's posts mostly lie below the
    timeline's floor). Cutting each into a read of its own cost a slice and an object per
    pulled author per read; here each is a window (start, end) into the kept list, skipped
    whole when its newest id is below the floor.
    """
    empty_floor = cursor if cursor is not None else _NO_FLOOR
    floor = _highest_floor(reads, cursor)
    windows: list[tuple[list[int], int, int]] = []
    for whole in kept:
        ids = whole.ids
        start = 0
        if cursor is not None and ids and ids[0] >= cursor:
            start = bisect_right(ids, -cursor, key=neg)
        end = min(start + limit, len(ids))
        if end > start:
            if ids[end - 1] > floor:
                floor = ids[end - 1]
            windows.append((ids, start, end))
        elif empty_floor > floor:
            floor = empty_floor
    parts: list[int] = []
    for read in reads:
        ids = read.ids
        if ids:
            parts += ids if ids[-1] >= floor else ids[: bisect_right(ids, -floor, key=neg)]
    for ids, start, end in windows:
        if ids[start] < floor:
            continue  # the usual pulled list: nothing of it at or above the floor
        if ids[end - 1] < floor:
            end = bisect_right(ids, -floor, start, end, key=neg)
        parts += ids[start:end]
    seen = set(parts)
    seen.discard(BOTTOM)
    return Merged(sorted(seen, reverse=True), floor)
