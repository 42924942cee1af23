"""Re-ranking: the diversity rule and the guaranteed first-page slots hold for any scores."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from homefeed.feed.ids import make_id
from homefeed.feed.ranking.features import Candidates
from homefeed.feed.ranking.rerank import GAP, RECENT_HOURS, guaranteed, rerank

NOW_MS = 1_800_000_000_000
HOUR_MS = 3_600_000


def world(posts: Sequence[tuple[int, float, float]], top: set[int]) -> tuple[Candidates, np.ndarray]:
    """Candidates from (author, age in hours, score), newest first, and their scores."""
    rows = sorted(
        (
            (make_id(NOW_MS - int(age * HOUR_MS), i), author, score)
            for i, (author, age, score) in enumerate(posts)
        ),
        reverse=True,
    )
    n = len(rows)
    candidates = Candidates(
        ids=np.array([r[0] for r in rows], dtype=np.int64),
        authors=np.array([r[1] for r in rows], dtype=np.int64),
        likes=np.zeros(n),
        social=np.zeros(n),
        affinity=np.zeros(n),
        author_rate=np.zeros(n),
        top_author=np.array([r[1] in top for r in rows], dtype=np.bool_),
        now_ms=NOW_MS,
    )
    return candidates, np.array([r[2] for r in rows], dtype=np.float64)


posts_ = st.lists(
    st.tuples(
        st.integers(min_value=1, max_value=6),
        st.floats(min_value=0, max_value=72),
        st.floats(min_value=0, max_value=10, allow_nan=False),
    ),
    max_size=40,
)


def diversity_breaks(authors: list[int]) -> list[int]:
    """Positions where an author repeats within GAP while some later position holds another author."""
    broken = []
    for i in range(len(authors)):
        window = authors[max(0, i - GAP + 1) : i]
        if authors[i] in window and any(a not in window for a in authors[i:]):
            broken.append(i)
    return broken


@given(posts=posts_, first=st.integers(min_value=1, max_value=25))
def test_order_is_a_permutation_and_no_author_repeats_within_three_while_another_remains(
    posts: list[tuple[int, float, float]], first: int
) -> None:
    candidates, scores = world(posts, top=set())
    order = rerank(candidates, scores, first)
    assert sorted(order) == list(range(len(posts)))
    assert diversity_breaks([int(candidates.authors[i]) for i in order]) == []


@given(posts=posts_, first=st.integers(min_value=1, max_value=25), top=st.sets(st.integers(1, 6), max_size=3))
def test_top_authors_with_a_recent_post_get_a_first_page_slot(
    posts: list[tuple[int, float, float]], first: int, top: set[int]
) -> None:
    candidates, scores = world(posts, top)
    order = rerank(candidates, scores, first)
    assert sorted(order) == list(range(len(posts)))
    page = order[:first]
    ages = candidates.age_hours
    recent_authors = {int(candidates.authors[i]) for i in range(len(posts)) if ages[i] <= RECENT_HOURS}
    owed = sorted(top & recent_authors)
    shown = {int(candidates.authors[i]) for i in page if ages[i] <= RECENT_HOURS}
    # As many owed authors as the page has room for are shown with a recent post.
    assert len(set(owed) & shown) >= min(len(owed), first)


def test_without_constraints_the_order_is_by_score_then_newest() -> None:
    candidates, scores = world([(1, 1, 0.5), (2, 2, 0.9), (3, 3, 0.5), (4, 4, 0.1)], top=set())
    order = rerank(candidates, scores, 10)
    assert [float(scores[i]) for i in order] == [0.9, 0.5, 0.5, 0.1]
    # Equal scores: the newer post first.
    assert candidates.ids[order[1]] > candidates.ids[order[2]]


def test_diversity_spreads_an_authors_best_posts() -> None:
    # Author 1 has the four best posts; others fill between them.
    candidates, scores = world(
        [(1, 1, 9), (1, 2, 8), (1, 3, 7), (1, 4, 6), (2, 5, 1), (3, 6, 1), (4, 7, 1), (5, 8, 1)], set()
    )
    authors = [int(candidates.authors[i]) for i in rerank(candidates, scores, 8)]
    assert authors[0] == 1 and authors[1] != 1 and authors[2] != 1 and authors[3] == 1
    assert diversity_breaks(authors) == []


def test_a_low_scored_top_author_is_pulled_onto_the_first_page() -> None:
    posts = [(2, 1, 9.0 - i * 0.1) for i in range(3)] + [(3, 1, 8.0 - i * 0.1) for i in range(3)]
    posts += [(4, 1, 7.0 - i * 0.1) for i in range(3)] + [(9, 2, 0.01), (9, 30, 5.0)]
    candidates, scores = world(posts, top={9})
    assert len(guaranteed(candidates, scores)) == 1
    order = rerank(candidates, scores, 4)
    page = order[:4]
    recent_nine = [i for i in page if candidates.authors[i] == 9 and candidates.age_hours[i] <= 24]
    # Its older, better-scored post does not count: only a post of the last 24 h does.
    assert len(recent_nine) == 1


def reference(candidates: Candidates, scores: np.ndarray, first_page: int) -> list[int]:
    """The rules as first written (removal from a list, quadratic), against which the marked
    version is checked."""
    n = len(candidates)
    remaining: list[int] = np.lexsort((-candidates.ids, -scores)).tolist()
    authors: list[int] = candidates.authors.tolist()
    recent: list[bool] = (candidates.age_hours <= RECENT_HOURS).tolist()
    owed = guaranteed(candidates, scores)
    owed_authors = {authors[i] for i in owed}
    placed: list[int] = []
    for position in range(n):
        recent_last = {authors[i] for i in placed[-(GAP - 1) :]}
        pick: int | None = None
        if owed and position < first_page and first_page - position <= len(owed):
            pick = next((i for i in owed if authors[i] not in recent_last), owed[0])
        else:
            for k, i in enumerate(remaining):
                if authors[i] not in recent_last:
                    pick = remaining.pop(k)
                    break
            if pick is None:
                pick = remaining.pop(0)
        if pick in remaining:
            remaining.remove(pick)
        placed.append(pick)
        if position < first_page and authors[pick] in owed_authors and recent[pick]:
            owed = [i for i in owed if authors[i] != authors[pick]]
            owed_authors.discard(authors[pick])
        if position + 1 >= first_page:
            owed = []
    return placed


@given(posts=posts_, first=st.integers(min_value=1, max_value=25), top=st.sets(st.integers(1, 6), max_size=3))
def test_the_order_is_the_reference_order(
    posts: list[tuple[int, float, float]], first: int, top: set[int]
) -> None:
    candidates, scores = world(posts, top)
    assert rerank(candidates, scores, first) == reference(candidates, scores, first)
