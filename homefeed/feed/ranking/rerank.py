"""Re-ranking scored candidates: author diversity and the guaranteed first-page slots.

The rules (docs/design.md, "Ranked feed"):
- diversity: no author twice in any 3 consecutive positions while another candidate exists;
- guaranteed slots: the first page holds a post made within the last 24 hours by each of the
  viewer's top-3 affinity authors who has one (their best-scored such post).

Greedy, one position at a time: the best-scored remaining candidate whose author is not among
the two placed last, unless the first page's remaining positions are needed for guaranteed
posts not yet shown. A guaranteed post's author has no recent post on the page yet, so taking
it rarely breaks diversity; where it would, the guarantee wins.
"""

from __future__ import annotations

import numpy as np

from homefeed.feed.ranking.features import F64, I64, Candidates

RECENT_HOURS = 24.0
GAP = 3  # an author appears at most once in any GAP consecutive positions


def guaranteed(candidates: Candidates, scores: F64) -> list[int]:
    """Indices of the guaranteed posts: per top author, their best-scored post of the last 24 h."""
    best: dict[int, int] = {}
    recent = candidates.top_author & (candidates.age_hours <= RECENT_HOURS)
    for i in np.flatnonzero(recent).tolist():
        author = int(candidates.authors[i])
        if author not in best or _before(scores, candidates.ids, i, best[author]):
            best[author] = i
    return sorted(best.values(), key=lambda i: (-scores[i], -candidates.ids[i]))


def _before(scores: F64, ids: I64, a: int, b: int) -> bool:
    return bool(scores[a] > scores[b] or (scores[a] == scores[b] and ids[a] > ids[b]))


def rerank(candidates: Candidates, scores: F64, first_page: int) -> list[int]:
    """The ranked order, as indices into the candidates."""
    n = len(candidates)
    if n == 0:
        return []
    # Best score first; equal scores newest first, so the order is a function of the inputs.
    by_score: list[int] = np.lexsort((-candidates.ids, -scores)).tolist()
    authors: list[int] = candidates.authors.tolist()
    recent: list[bool] = (candidates.age_hours <= RECENT_HOURS).tolist()
    owed = guaranteed(candidates, scores)
    owed_authors = {authors[i] for i in owed}
    # Placed candidates are marked, not removed from by_score: removing from the middle of a
    # list (and finding an owed post in it) made a first page quadratic in its candidates.
    taken = [False] * n
    head = 0  # by_score[:head] are all placed
    placed: list[int] = []
    # The authors of the last GAP - 1 (two) placed posts, kept as two names rather than a set
    # built per position: this loop runs once per candidate of every first page.
    last1 = last2 = -1
    for position in range(n):
        if owed and position < first_page and first_page - position <= len(owed):
            pick = next((i for i in owed if authors[i] != last1 and authors[i] != last2), owed[0])
        else:
            while taken[by_score[head]]:
                head += 1
            pick = by_score[head]  # every remaining post is by a recent author: the best one
            author = authors[pick]
            if author in (last1, last2):
                for k in range(head + 1, n):
                    i = by_score[k]
                    if not taken[i]:
                        author = authors[i]
                        if author != last1 and author != last2:
                            pick = i
                            break
        taken[pick] = True
        placed.append(pick)
        last2, last1 = last1, authors[pick]
        # Any recent post of an owed author on the first page settles what they are owed.
        if position < first_page and last1 in owed_authors and recent[pick]:
            owed = [i for i in owed if authors[i] != last1]
            owed_authors.discard(last1)
        if position + 1 >= first_page:
            owed = []
    return placed
