"""The ranked ("For You") home feed: candidates and their features, scoring, re-ranking, snapshots.

The engine side only: no GraphQL. `Ranker` (ranker.py) answers pages; the rest are its parts.
"""
