"""homeFeed(order: RANKED): scores on edges, snapshot cursors, expiry and cursor errors."""

from __future__ import annotations

from typing import Any

from homefeed.feed.services import Services
from tests.api import Account, Api

RANKED = """query($f: Int, $a: String, $o: FeedOrder) { homeFeed(first: $f, after: $a, order: $o) {
  edges { cursor score node { id author { handle } } }
  pageInfo { hasNextPage endCursor } } }"""


async def ranked(api: Api, who: Account, first: int, after: str | None = None, order: str = "RANKED") -> Any:
    return await api.gql(RANKED, {"f": first, "a": after, "o": order}, token=who.token)


async def test_ranked_pages_carry_scores_and_cover_the_feed_once(api: Api) -> None:
    viewer, ann, bob = [await api.sign_up(h) for h in ("viewer", "ann", "bob")]
    for author in (ann, bob):
        (await api.act(viewer, "follow", author)).ok()
    posts = [await api.post(who, f"{who.handle} {i}") for i in range(4) for who in (ann, bob, viewer)]
    latest = await api.whole_feed(viewer, 5)
    assert sorted(latest) == sorted(posts)
    seen: list[str] = []
    after = None
    while True:
        conn = (await ranked(api, viewer, 5, after)).ok()["homeFeed"]
        edges = conn["edges"]
        assert all(isinstance(e["score"], float) for e in edges)
        seen += [e["node"]["id"] for e in edges]
        if not conn["pageInfo"]["hasNextPage"]:
            break
        assert len(edges) == 5
        after = conn["pageInfo"]["endCursor"]
    assert sorted(seen) == sorted(latest)
    # LATEST is unchanged, with or without the argument, and has no scores.
    for order in ("LATEST", None):
        conn = (await ranked(api, viewer, 5, None, order)).ok()["homeFeed"]  # type: ignore[arg-type]
        assert [e["node"]["id"] for e in conn["edges"]] == latest[:5]
        assert all(e["score"] is None for e in conn["edges"])


async def test_expired_and_foreign_cursors_are_bad_user_input(api: Api, services: Services) -> None:
    viewer, ann = [await api.sign_up(h) for h in ("viewer", "ann")]
    (await api.act(viewer, "follow", ann)).ok()
    for i in range(4):
        await api.post(ann, f"{i}")
    conn = (await ranked(api, viewer, 2)).ok()["homeFeed"]
    cursor = conn["pageInfo"]["endCursor"]
    # A LATEST cursor is no RANKED cursor, and the reverse.
    latest_cursor = (await api.feed(viewer, 2)).ok()["homeFeed"]["pageInfo"]["endCursor"]
    assert (await ranked(api, viewer, 2, latest_cursor)).codes == ["BAD_USER_INPUT"]
    assert (await api.feed(viewer, 2, cursor)).codes == ["BAD_USER_INPUT"]
    # Another viewer's ranked cursor is refused too.
    other = await api.sign_up("other")
    assert (await ranked(api, other, 2, cursor)).codes == ["BAD_USER_INPUT"]
    keys = [k async for k in services.redis.scan_iter(match=f"{services.settings.redis_prefix}:*:rank:*")]
    assert keys
    await services.redis.delete(*keys)
    expired = await ranked(api, viewer, 2, cursor)
    assert expired.codes == ["BAD_USER_INPUT"]
    assert expired.errors[0]["message"] == "ranked cursor expired; start from the first page"
