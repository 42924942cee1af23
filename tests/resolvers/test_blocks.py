"""Blocks hide both ways: through `post`, `node` and `user.posts`, not just the home feed."""

from __future__ import annotations

import pytest

from tests.api import Account, Api
from tests.conftest import Counted, ServicesFactory
from tests.loaders.test_user_posts import AUTHOR_PAGES

SEE = """query($p: ID!, $u: String!) {
  post(id: $p) { id }
  node(id: $p) { id }
  user(handle: $u) { posts(first: 10) { nodes { id } pageInfo { hasNextPage } } }
}"""
# A page of one author's posts asking for its author's posts again: the nested page is read by
# the same batched loader, so it must be filtered the same way.
NESTED = """query($u: String!) {
  user(handle: $u) { posts(first: 5) { nodes { id author { posts(first: 5) { nodes { id } } } } } }
}"""


async def _sees(api: Api, who: Account | None, author: Account, post_id: str) -> tuple[bool, bool, list[str]]:
    """(post answers, node answers, ids in author's posts) as `who` (None: anonymous) reads them."""
    data = (await api.gql(SEE, {"p": post_id, "u": author.handle}, token=who.token if who else None)).ok()
    ids = [n["id"] for n in data["user"]["posts"]["nodes"]]
    return data["post"] is not None, data["node"] is not None, ids


@pytest.mark.parametrize("blocker", ["author", "viewer"])
async def test_a_block_either_way_hides_the_authors_posts_until_unblocked(
    make_services: ServicesFactory, blocker: str
) -> None:
    services = await make_services()
    async with Api.running(services) as api:
        author, viewer, third = [await api.sign_up(h) for h in ("author", "viewer", "third")]
        (await api.act(viewer, "follow", author)).ok()
        post_id = await api.post(author, "hello")
        assert await _sees(api, viewer, author, post_id) == (True, True, [post_id])

        who, target = (author, viewer) if blocker == "author" else (viewer, author)
        (await api.act(who, "block", target)).ok()
        hidden = await _sees(api, viewer, author, post_id)
        assert hidden == (False, False, []), hidden
        # Neither are the viewer's own posts shown to the author: the rule is symmetric.
        own = await api.post(viewer, "mine") if blocker == "author" else None
        if own is not None:
            assert await _sees(api, author, viewer, own) == (False, False, [])
        # The empty page says so: no further page hides behind it.
        page = (await api.gql(SEE, {"p": post_id, "u": author.handle}, token=viewer.token)).ok()
        assert page["user"]["posts"]["pageInfo"]["hasNextPage"] is False
        # Someone else, and anyone anonymous, still sees everything.
        assert await _sees(api, third, author, post_id) == (True, True, [post_id])
        assert await _sees(api, None, author, post_id) == (True, True, [post_id])
        # The author still sees their own post.
        assert await _sees(api, author, author, post_id) == (True, True, [post_id])

        (await api.act(who, "unblock", target)).ok()
        assert await _sees(api, viewer, author, post_id) == (True, True, [post_id])


async def test_nested_author_pages_are_filtered_too(make_services: ServicesFactory) -> None:
    services = await make_services()
    async with Api.running(services) as api:
        author, viewer, third = [await api.sign_up(h) for h in ("author", "viewer", "third")]
        posts = [await api.post(author, f"p{i}") for i in range(3)]
        (await api.act(author, "block", viewer)).ok()
        data = (await api.gql(NESTED, {"u": author.handle}, token=viewer.token)).ok()
        assert data["user"]["posts"]["nodes"] == []
        data = (await api.gql(NESTED, {"u": author.handle}, token=third.token)).ok()
        nodes = data["user"]["posts"]["nodes"]
        assert [n["id"] for n in nodes] == list(reversed(posts))
        assert all([m["id"] for m in n["author"]["posts"]["nodes"]] == list(reversed(posts)) for n in nodes)


async def test_one_request_mixes_blocked_and_visible_authors(make_services: ServicesFactory) -> None:
    # Posts of several authors in one batch: only the blocked author's drop out.
    services = await make_services()
    async with Api.running(services) as api:
        viewer, blocked, blocking, friend = [await api.sign_up(h) for h in ("viewer", "bl", "bg", "fr")]
        ids = {who.handle: await api.post(who, who.handle) for who in (blocked, blocking, friend)}
        (await api.act(viewer, "block", blocked)).ok()
        (await api.act(blocking, "block", viewer)).ok()
        query = "query { " + " ".join(f'{h}: post(id: "{i}") {{ id }}' for h, i in ids.items()) + " }"
        data = (await api.gql(query, token=viewer.token)).ok()
        assert data == {"bl": None, "bg": None, "fr": {"id": ids["fr"]}}


async def test_blocks_cost_no_extra_statement_however_many_authors(counted: Counted) -> None:
    # Many posts and many authors' pages, half of them across a block: the filter rides in the
    # batched reads, so a blocked viewer's request costs exactly what anyone else's does.
    api = counted.api
    viewer, third = await api.sign_up("viewer"), await api.sign_up("third")
    authors = [await api.sign_up(f"a{i}") for i in range(8)]
    ids = [await api.post(a, a.handle) for a in authors]
    for i, author in enumerate(authors[:4]):
        blocker, blocked = (author, viewer) if i % 2 else (viewer, author)
        (await api.act(blocker, "block", blocked)).ok()
    query = (
        "query { "
        + " ".join(f'p{i}: post(id: "{pid}") {{ id }}' for i, pid in enumerate(ids))
        + " "
        + " ".join(
            f'u{i}: node(id: "{a.id}") {{ ... on User {{ posts {{ nodes {{ id }} }} }} }}'
            for i, a in enumerate(authors)
        )
        + " }"
    )
    cost: dict[str, list[str]] = {}
    for who in (viewer, third, viewer):  # the first read warms up statements and types
        counted.statements.clear()
        data = (await api.gql(query, token=who.token)).ok()
        cost[who.handle] = counted.queries()
        hidden = 4 if who is viewer else 0
        assert [data[f"p{i}"] is None for i in range(8)] == [i < hidden for i in range(8)], who.handle
        pages = [[n["id"] for n in data[f"u{i}"]["posts"]["nodes"]] for i in range(8)]
        assert pages == [[] if i < hidden else [ids[i]] for i in range(8)], who.handle
    # The very same statements: the blocks ride inside the posts' and pages' reads.
    assert sorted(cost["viewer"]) == sorted(cost["third"]), cost
    assert any(AUTHOR_PAGES in s for s in cost["viewer"]), cost["viewer"]
    assert not [s for s in cost["viewer"] if "blocks" in s and "posts" not in s], cost["viewer"]
