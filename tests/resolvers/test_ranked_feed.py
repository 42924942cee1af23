"""homeFeed(order: RANKED): scores on edges, snapshot cursors, expiry and cursor errors."""

from __future__ import annotations

from typing import Any

import pytest
from redis.exceptions import TimeoutError as RedisTimeoutError

from homefeed.feed.services import Services
from tests.api import Account, Api
from tests.conftest import Counted

# Users.by_ids: the statement that reads a token's user when no read has vouched for them.
USER_LOOK_UP = "SELECT id, handle"

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


async def second_page_cursor(api: Api) -> tuple[Account, str]:
    """A viewer following one author of 4 posts, and the cursor after their first RANKED page of 2."""
    viewer, ann = [await api.sign_up(h) for h in ("viewer", "ann")]
    (await api.act(viewer, "follow", ann)).ok()
    for i in range(4):
        await api.post(ann, f"{i}")
    conn = (await ranked(api, viewer, 2)).ok()["homeFeed"]
    return viewer, conn["pageInfo"]["endCursor"]


async def test_expired_and_foreign_cursors_are_bad_user_input(api: Api, services: Services) -> None:
    viewer, cursor = await second_page_cursor(api)
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


async def test_snapshot_pages_need_no_separate_look_up_of_the_viewer(counted: Counted) -> None:
    # As for LATEST: the visibility statement that shows the snapshot's posts finds rows only for
    # a viewer who exists, so the token's user is not read on its own.
    api = counted.api
    viewer, ann = await api.sign_up("viewer"), await api.sign_up("ann")
    (await api.act(viewer, "follow", ann)).ok()
    for i in range(6):
        await api.post(ann, f"{i}")
    await api.whole_feed(viewer, 5)
    after = None
    for _ in range(2):
        counted.statements.clear()
        conn = (await ranked(api, viewer, 3, after)).ok()["homeFeed"]
        assert len(conn["edges"]) == 3
        assert not [s for s in counted.queries() if s.startswith(USER_LOOK_UP)], counted.queries()
        after = conn["pageInfo"]["endCursor"]


async def test_a_viewer_who_is_gone_is_unauthenticated(api: Api, services: Services) -> None:
    viewer, ann = [await api.sign_up(h) for h in ("viewer", "ann")]
    (await api.act(viewer, "follow", ann)).ok()
    await api.post(ann, "hello")
    cursor = (await ranked(api, viewer, 1)).ok()["homeFeed"]["pageInfo"]["endCursor"]
    # Gone, yet the token still verifies: every ranked read says so before anything else.
    gone = await services.pool.fetchval("SELECT id FROM users WHERE lower(handle) = 'viewer'")
    await services.pool.execute("DELETE FROM follows WHERE follower_id = $1", gone)
    await services.pool.execute("DELETE FROM followers WHERE follower_id = $1", gone)
    await services.pool.execute("DELETE FROM users WHERE id = $1", gone)
    assert (await ranked(api, viewer, 1)).codes == ["UNAUTHENTICATED"]
    assert (await ranked(api, viewer, 1, cursor)).codes == ["UNAUTHENTICATED"]


async def test_a_snapshot_read_timing_out_is_retry_later_not_expiry(
    api: Api, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    viewer, cursor = await second_page_cursor(api)
    expected = (await ranked(api, viewer, 2, cursor)).ok()["homeFeed"]
    # The snapshot GET times out, on whichever client it goes through (the read path's own
    # connection, or redis-py): the snapshot is still there, so the cursor must stay good.
    snapshots = services.ranker.snapshots
    client: Any = snapshots._reads if snapshots._reads is not None else snapshots._redis
    real_get = client.get
    failures = 0

    async def timing_out(key: str) -> Any:
        nonlocal failures
        if ":rank:" in key:
            failures += 1
            raise RedisTimeoutError("Redis did not answer within 0.25 s")
        return await real_get(key)

    monkeypatch.setattr(client, "get", timing_out)
    refused = await ranked(api, viewer, 2, cursor)
    assert failures == 1
    assert refused.codes == ["RATE_LIMITED"]
    assert refused.errors[0]["extensions"]["retryAfter"] == 1
    assert "expired" not in refused.errors[0]["message"]
    # Once Redis answers again, the same cursor gives the same page: the reader kept their place.
    monkeypatch.setattr(client, "get", real_get)
    again = (await ranked(api, viewer, 2, cursor)).ok()["homeFeed"]
    assert again == expected
