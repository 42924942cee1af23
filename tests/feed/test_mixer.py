from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from homefeed.feed.feeds import below as feeds_below
from homefeed.feed.mixer import merge, merge_kept, source_floor, window_of
from homefeed.feed.timeline.encoding import BUILT, Blob
from homefeed.feed.timeline.lists import BOTTOM, ListRead
from homefeed.feed.timeline.lists import below as list_below


def read(ids: list[int], limit: int) -> ListRead:
    return ListRead(complete=True, ids=ids, ttl=100, limit=limit)


def test_floor_is_the_oldest_id_read_unless_the_list_holds_all_history() -> None:
    assert source_floor(read([9, 7, 5], 3), None) == 5
    assert source_floor(read([9, 7, BOTTOM], 5), None) == 0
    assert source_floor(read([], 5), 42) == 42


def test_candidates_stop_at_the_highest_floor() -> None:
    timeline = read([20, 18, 16, 14], 4)  # may hold more below 14
    celebrity = read([19, 11, BOTTOM], 4)  # complete
    merged = merge([timeline, celebrity], None)
    assert merged.floor == 14
    assert merged.candidates == [20, 19, 18, 16, 14]


@st.composite
def sources(draw: st.DrawFn) -> tuple[list[int], list[ListRead], int | None]:
    """A true feed split between sources, each a bounded, possibly truncated view of its share."""
    truth = sorted(draw(st.sets(st.integers(1, 500), max_size=60)), reverse=True)
    n = draw(st.integers(1, 4))
    owner = [draw(st.integers(0, n - 1)) for _ in truth]
    cursor = draw(st.one_of(st.none(), st.integers(1, 501)))
    reads = []
    for s in range(n):
        share = [i for i, o in zip(truth, owner, strict=True) if o == s]
        kept = draw(st.integers(0, len(share)))  # the list holds only its newest `kept`
        held = share[:kept]
        whole = kept == len(share)
        below = [i for i in held if cursor is None or i < cursor]
        limit = draw(st.integers(1, 10))
        ids = below[:limit]
        if whole and len(below) < limit:
            ids.append(BOTTOM)
        reads.append(ListRead(complete=True, ids=ids, ttl=1, limit=limit))
    return truth, reads, cursor


@given(sources())
def test_merge_yields_exactly_the_true_feed_between_floor_and_cursor(
    case: tuple[list[int], list[ListRead], int | None],
) -> None:
    truth, reads, cursor = case
    merged = merge(reads, cursor)
    expected = [i for i in truth if i >= merged.floor and (cursor is None or i < cursor)]
    assert merged.candidates == expected


@given(sources())
def test_one_source_merges_as_it_would_beside_an_empty_complete_one(
    case: tuple[list[int], list[ListRead], int | None],
) -> None:
    # A single read takes a shortcut; an empty complete read (floor 0) changes nothing.
    _, reads, cursor = case
    alone = merge(reads[:1], cursor)
    assert alone == merge([reads[0], read([BOTTOM], 1)], cursor)


@given(
    st.sets(st.integers(1, 500), max_size=60),
    st.booleans(),
    st.one_of(st.none(), st.integers(0, 502)),
    st.integers(1, 70),
)
def test_a_kept_whole_list_cut_below_a_cursor_is_what_redis_would_have_read(
    held: set[int], whole: bool, cursor: int | None, limit: int
) -> None:
    # feeds.below bisects a pulled author's kept list; the reference filters it id by id.
    ids = sorted(held, reverse=True) + ([BOTTOM] if whole else [])
    full = ListRead(complete=True, ids=ids, ttl=7, limit=len(ids) + 2)
    expected = [i for i in ids if cursor is None or i < cursor][:limit]
    assert feeds_below(full, cursor, limit) == ListRead(complete=True, ids=expected, ttl=7, limit=limit)


def reference_merge(reads: list[ListRead], cursor: int | None) -> tuple[list[int], int]:
    """Id by id: each source's floor (0 with BOTTOM, else its lowest id), then the ids above the highest."""
    floors = [
        0 if BOTTOM in r.ids else min(r.ids) if r.ids else (cursor if cursor is not None else 2**63 - 1)
        for r in reads
    ]
    floor = max(floors)
    ids = {i for r in reads for i in r.ids if i >= floor and i != BOTTOM}
    return sorted(ids, reverse=True), floor


@st.composite
def overlapping(draw: st.DrawFn) -> tuple[list[ListRead], int | None]:
    """Sources that share ids, as a timeline shares a pulled author's posts from before the pull."""
    pool = draw(st.lists(st.integers(1, 300), min_size=1, max_size=80, unique=True))
    cursor = draw(st.one_of(st.none(), st.integers(1, 301)))
    reads = []
    for _ in range(draw(st.integers(2, 12))):
        held = sorted(draw(st.sets(st.sampled_from(pool), max_size=40)), reverse=True)
        below = [i for i in held if cursor is None or i < cursor]
        limit = draw(st.integers(1, 35))
        ids = below[:limit]
        if draw(st.booleans()) and len(below) < limit:
            ids.append(BOTTOM)
        reads.append(ListRead(complete=True, ids=ids, ttl=1, limit=limit))
    return reads, cursor


@given(overlapping())
def test_merge_of_overlapping_sources_is_the_id_by_id_merge(case: tuple[list[ListRead], int | None]) -> None:
    # merge() takes each source's prefix at or above the floor by bisection; the reference tests each id.
    reads, cursor = case
    merged = merge(reads, cursor)
    assert (merged.candidates, merged.floor) == reference_merge(reads, cursor)


@st.composite
def windows(draw: st.DrawFn) -> tuple[Blob, list[ListRead], int, int]:
    """A decoded timeline (whole or not), pulled authors' whole lists (some ending with BOTTOM, some
    sharing ids with the timeline), a read's length and the window's lowest id."""
    ids = sorted(draw(st.sets(st.integers(1, 300), max_size=40)))
    whole = draw(st.booleans())
    floor = 0 if whole or not ids else ids[0]
    timeline = Blob(BUILT, floor, np.asarray(ids, dtype=np.int64))
    pulled = []
    for _ in range(draw(st.integers(0, 4))):
        listed = sorted(draw(st.sets(st.integers(1, 300), max_size=30)), reverse=True)
        pulled.append(read([*listed, BOTTOM] if draw(st.booleans()) else listed, len(listed) + 1))
    return timeline, pulled, draw(st.integers(1, 45)), draw(st.integers(0, 310))


@given(windows())
def test_a_window_is_what_merge_gives_of_the_same_reads_above_its_lowest_id(
    case: tuple[Blob, list[ListRead], int, int],
) -> None:
    timeline, pulled, limit, lowest = case
    reads = [list_below(timeline, None, limit, 100)] + [feeds_below(whole, None, limit) for whole in pulled]
    merged = merge(reads, None)
    ids, floor = window_of(timeline, pulled, limit, lowest)
    assert floor == merged.floor
    assert ids == [i for i in merged.candidates if i >= lowest]


@st.composite
def kept_lists(draw: st.DrawFn) -> tuple[list[ListRead], list[ListRead], int | None, int]:
    """A timeline read and pulled authors' whole kept lists (each maybe holding all history)."""
    pool = draw(st.lists(st.integers(1, 300), min_size=1, max_size=80, unique=True))
    cursor = draw(st.one_of(st.none(), st.integers(1, 301)))
    limit = draw(st.integers(1, 35))
    held = sorted(draw(st.sets(st.sampled_from(pool), max_size=40)), reverse=True)
    below = [i for i in held if cursor is None or i < cursor]
    ids = below[:limit]
    if draw(st.booleans()) and len(below) < limit:
        ids.append(BOTTOM)
    reads = [ListRead(complete=True, ids=ids, ttl=1, limit=limit)]
    kept = []
    for _ in range(draw(st.integers(0, 12))):
        whole = sorted(draw(st.sets(st.sampled_from(pool), max_size=40)), reverse=True)
        if draw(st.booleans()):
            whole.append(BOTTOM)
        kept.append(ListRead(complete=True, ids=whole, ttl=1, limit=len(whole) + 2))
    return reads, kept, cursor, limit


@given(kept_lists())
def test_merge_of_kept_lists_is_the_merge_of_their_cuts(
    case: tuple[list[ListRead], list[ListRead], int | None, int],
) -> None:
    # merge_kept windows each kept list instead of cutting it (feeds.below): the same candidates and floor.
    reads, kept, cursor, limit = case
    cut = [feeds_below(k, cursor, limit) for k in kept]
    assert merge_kept(reads, kept, cursor, limit) == merge([*reads, *cut], cursor)
