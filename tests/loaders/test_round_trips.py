"""Hydration through DataLoaders: a feed page costs the same SQL round trips whatever its size."""

from __future__ import annotations

import asyncio

from tests.api import Account
from tests.conftest import POOL_RESET, Counted

PAGE = """query($f: Int) { homeFeed(first: $f) {
  edges { cursor node { id text createdAt likeCount viewerHasLiked
                        author { id handle displayName createdAt viewerFollows } } }
  nodes { id author { handle } }
  pageInfo { hasNextPage endCursor } } }"""
# The viewer (exists? pulled followees?), then the visible posts with the viewer's likes; the
# authors are known to the process: hydration primes every loader from these two.
MAX_QUERIES = 2
# Authors' counts are left out of a feed's read: asking for them costs one look-up of them all.
WITH_COUNTS = PAGE.replace("createdAt viewerFollows", "createdAt followerCount followingCount viewerFollows")


async def test_feed_page_costs_constant_round_trips(counted: Counted) -> None:
    api, services, statements = counted.api, counted.services, counted.statements
    viewer = await api.sign_up("viewer")
    authors: list[Account] = [await api.sign_up(f"author{i}") for i in range(25)]
    for author in authors[::2]:
        (await api.act(viewer, "follow", author)).ok()
    for author in authors:
        # Unfollowed authors post too: the page fills from the followed ones only.
        await api.post(author, f"post by {author.handle}")
        await api.post(author, f"another by {author.handle}")
    liked = await api.post(authors[0], "liked")
    await api.gql("mutation($p: ID!) { likePost(id: $p) { id } }", {"p": liked}, token=viewer.token)
    await api.post(viewer, "mine")

    sizes = (20, 5, 1)
    for first in sizes * 2:  # warm-up: statements prepared, types introspected, authors known
        (await api.gql(PAGE, {"f": first}, token=viewer.token)).ok()
    for _ in range(200):  # and the process's start-up read of authors, in the background, done
        if len(services.feeds.authors):
            break
        await asyncio.sleep(0.01)
    cost: dict[int, list[str]] = {}
    with_counts: dict[int, list[str]] = {}
    for first in sizes:
        statements.clear()
        page = (await api.gql(PAGE, {"f": first}, token=viewer.token)).ok()["homeFeed"]
        assert len(page["edges"]) == first
        cost[first] = list(statements)
        statements.clear()
        page = (await api.gql(WITH_COUNTS, {"f": first}, token=viewer.token)).ok()["homeFeed"]
        assert all(e["node"]["author"]["followerCount"] >= 0 for e in page["edges"])
        with_counts[first] = list(statements)
    assert len(cost[20]) == len(cost[5]) == len(cost[1]), {n: len(s) for n, s in cost.items()}
    queries = [s for s in cost[20] if not s.startswith(POOL_RESET)]
    assert len(queries) <= MAX_QUERIES, queries
    for first in sizes:
        extra = [s for s in with_counts[first] if s not in cost[first] and not s.startswith(POOL_RESET)]
        assert len(extra) == 1 and "FROM users WHERE id = ANY" in extra[0], (first, extra)
