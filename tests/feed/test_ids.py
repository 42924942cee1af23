"""Ids minted by the database: below 2**53, increasing, and carrying their time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from homefeed.feed import ids
from homefeed.feed.services import Services


async def test_db_ids_fit_a_double_and_increase(services: Services) -> None:
    before = datetime.now(UTC)
    minted: list[int] = []
    for _ in range(5):
        minted += [
            r["id"] for r in await services.pool.fetch("SELECT next_id() AS id FROM generate_series(1, 50)")
        ]
    after = datetime.now(UTC)
    assert all(0 < i < 2**53 for i in minted)
    assert all(float(i) == i for i in minted)
    assert minted == sorted(minted) and len(set(minted)) == len(minted)
    slack = timedelta(milliseconds=5)
    assert all(before - slack <= ids.id_time(i) <= after + slack for i in minted)


async def test_post_ids_increase_and_created_at_matches(services: Services) -> None:
    user = await services.users.create("ids", "Ids", "x")
    posts = [await services.posts.create(user.id, f"post {n}") for n in range(10)]
    assert [p.id for p in posts] == sorted(p.id for p in posts)
    for p in posts:
        assert p.id < ids.MAX_ID
        assert p.created_at == ids.id_time(p.id)


def test_layout_round_trips() -> None:
    ms = 1_750_000_000_123
    made = ids.make_id(ms, 17)
    assert ids.id_ms(made) == ms
    assert ids.lowest_id_at(ms) <= made < ids.lowest_id_at(ms + 1)
    # The layout stays below 2**53 for decades: the 41-bit millisecond field runs out in ~2093.
    assert ids.make_id(ids.EPOCH_MS + 2**41 - 1, 4095) == ids.MAX_ID
