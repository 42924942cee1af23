"""User.posts through the loaders: many authors' pages cost one statement, and each page is
the same as the unbatched read (Feeds.author) would give, cursors and deletions included."""

from __future__ import annotations

import random

from homefeed.feed.services import Services
from homefeed.feed.store.posts import AuthorPage
from tests.api import Account, Api
from tests.conftest import Counted

# How Posts.by_authors's statement shows in the log.
AUTHOR_PAGES = "AS k(author_id, before, lim, i)"

# A page of one user's posts, each with its author's newest posts: the author of every post is
# the same user, so this checks that repeated pages are read once.
USER_POSTS = """query($h: String!, $f: Int, $g: Int) { user(handle: $h) {
  posts(first: $f) { nodes { id text author { handle posts(first: $g) { nodes { id text likeCount }
                                                                        pageInfo { hasNextPage } } } }
                     pageInfo { hasNextPage endCursor } } } }"""
# A page of the home feed, each post's author with their newest posts: many distinct authors.
FEED_AUTHORS = """query($f: Int, $g: Int) { homeFeed(first: $f) {
  nodes { id author { handle posts(first: $g) { nodes { id text likeCount author { handle } }
                                                pageInfo { hasNextPage endCursor } } } } } }"""


async def _world(api: Api, authors: int, posts_each: int) -> tuple[Account, list[Account]]:
    viewer = await api.sign_up("viewer")
    made = [await api.sign_up(f"author{i}") for i in range(authors)]
    for author in made:
        (await api.act(viewer, "follow", author)).ok()
    for n in range(posts_each):
        for author in made:
            await api.post(author, f"post {n} by {author.handle}")
    return viewer, made


async def test_user_posts_with_authors_posts_cost_constant_statements(counted: Counted) -> None:
    api = counted.api
    _, authors = await _world(api, authors=3, posts_each=25)
    sizes = (20, 5, 1)
    for first in sizes:  # warm-up: statements prepared, types introspected
        (await api.gql(USER_POSTS, {"h": authors[0].handle, "f": first, "g": 5})).ok()
    cost: dict[int, list[str]] = {}
    for first in sizes:
        counted.statements.clear()
        data = (await api.gql(USER_POSTS, {"h": authors[0].handle, "f": first, "g": 5})).ok()
        nodes = data["user"]["posts"]["nodes"]
        assert len(nodes) == first
        assert all(len(n["author"]["posts"]["nodes"]) == 5 for n in nodes)
        cost[first] = counted.queries()
    assert len(cost[20]) == len(cost[5]) == len(cost[1]), {n: len(s) for n, s in cost.items()}
    # The handle, the page, the page's author, the author's page: four, however long the page.
    assert len(cost[20]) == 4, cost[20]
    assert sum(AUTHOR_PAGES in s for s in cost[20]) == 2, cost[20]


async def test_feed_authors_posts_cost_one_statement_for_every_author(counted: Counted) -> None:
    api = counted.api
    viewer, authors = await _world(api, authors=12, posts_each=3)
    sizes = (30, 10, 2)
    for first in sizes:
        (await api.gql(FEED_AUTHORS, {"f": first, "g": 2}, token=viewer.token)).ok()
    cost: dict[int, list[str]] = {}
    for first in sizes:
        counted.statements.clear()
        data = (await api.gql(FEED_AUTHORS, {"f": first, "g": 2}, token=viewer.token)).ok()
        nodes = data["homeFeed"]["nodes"]
        assert len(nodes) == first
        handles = {n["author"]["handle"] for n in nodes}
        assert len(handles) == min(first, len(authors))
        for node in nodes:
            page = node["author"]["posts"]
            assert [p["author"]["handle"] for p in page["nodes"]] == [node["author"]["handle"]] * 2
            assert page["pageInfo"]["hasNextPage"]
        cost[first] = counted.queries()
    # Twelve authors' pages, or two: one statement reads them all, and the page costs the same.
    assert len(cost[30]) == len(cost[10]) == len(cost[2]), {n: len(s) for n, s in cost.items()}
    assert all(sum(AUTHOR_PAGES in s for s in c) == 1 for c in cost.values()), cost


async def test_batched_pages_equal_the_unbatched_read(services: Services, api: Api) -> None:
    """Every author's pages, followed through their cursors with random sizes and deletions in
    between, read in one batch, equal Feeds.author's page by page (the read this replaced)."""
    rng = random.Random(12)
    authors = [await api.sign_up(f"a{i}") for i in range(5)]
    ids: dict[str, list[str]] = {}
    for author in authors:
        ids[author.handle] = [
            await api.post(author, f"{author.handle} {n}") for n in range(rng.randint(0, 9))
        ]
    for author in authors[:3]:  # some deleted posts, which neither read may show
        for post in rng.sample(ids[author.handle], k=min(2, len(ids[author.handle]))):
            gone = await api.gql("mutation($p: ID!) { deletePost(id: $p) }", {"p": post}, token=author.token)
            assert gone.ok()["deletePost"]
    records = [await services.users.by_handle(a.handle) for a in authors]
    author_ids = [r.id for r in records if r is not None]
    assert len(author_ids) == len(authors)
    # Walk each author's posts with cursors (the first page of an empty author included).
    before: dict[int, int | None] = dict.fromkeys(author_ids)
    pending = set(author_ids)
    while pending:
        # As the resolver reads them: one more than the page, to tell whether another follows.
        keys = [AuthorPage(a, before[a], rng.randint(1, 4) + 1) for a in sorted(pending)]
        batched = await services.posts.by_authors(keys)
        for key, got in zip(keys, batched, strict=True):
            size = key.limit - 1
            expected = await services.feeds.author(key.author_id, size, key.before)
            assert [p.id for p in got[:size]] == expected.post_ids
            assert (len(got) > size) == expected.has_next
            assert all(p.author_id == key.author_id for p in got)
            if expected.has_next:
                before[key.author_id] = expected.post_ids[-1]
            else:
                pending.discard(key.author_id)
    assert await services.posts.by_authors([]) == []


async def test_user_posts_pages_through_cursors(api: Api) -> None:
    """Through the API: paging a user's posts by `after` gives every live post once, newest first."""
    author = await api.sign_up("pager")
    posted = [await api.post(author, f"p{n}") for n in range(7)]
    query = """query($h: String!, $a: String) { user(handle: $h) {
      posts(first: 3, after: $a) { nodes { id } pageInfo { hasNextPage hasPreviousPage endCursor } } } }"""
    seen: list[str] = []
    after: str | None = None
    while True:
        page = (await api.gql(query, {"h": author.handle, "a": after})).ok()["user"]["posts"]
        seen += [n["id"] for n in page["nodes"]]
        assert page["pageInfo"]["hasPreviousPage"] == (after is not None)
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert seen == posted[::-1]
    bad = await api.gql(query.replace("first: 3", "first: 0"), {"h": author.handle})
    assert bad.codes == ["BAD_USER_INPUT"]
