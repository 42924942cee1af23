"""Ranking quality against known preferences: NDCG, the diversity rule, the guaranteed slots."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from homefeed.feed.ranking.features import F64, Candidates
from homefeed.feed.ranking.rerank import GAP, RECENT_HOURS


def ndcg(relevance: F64, order: Sequence[int], k: int) -> float | None:
    """NDCG@k of an order (indices) given each candidate's graded relevance; None if all are 0."""
    ideal = np.sort(relevance)[::-1][:k]
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    best = float(ideal @ discounts[: len(ideal)])
    if best <= 0:
        return None
    got = relevance[np.asarray(order[:k], dtype=np.int64)]
    return float(got @ discounts[: len(got)]) / best


def diversity_violations(authors: Sequence[int]) -> int:
    """Positions where an author repeats within GAP although a later position holds another author."""
    broken = 0
    for i in range(len(authors)):
        window = authors[max(0, i - GAP + 1) : i]
        if authors[i] in window and any(a not in window for a in authors[i:]):
            broken += 1
    return broken


def owed_authors(candidates: Candidates) -> set[int]:
    """Top-3 affinity authors with a candidate of the last 24 hours."""
    recent = candidates.top_author & (candidates.age_hours <= RECENT_HOURS)
    return {int(a) for a in candidates.authors[recent]}


def slots_kept(candidates: Candidates, order: Sequence[int], first: int) -> bool:
    """Whether the first page holds a recent post of every owed author (as many as fit)."""
    owed = owed_authors(candidates)
    recent = candidates.age_hours <= RECENT_HOURS
    shown = {int(candidates.authors[i]) for i in order[:first] if recent[i]}
    return len(owed & shown) >= min(len(owed), first)
