"""Follows, blocks and mutes: idempotent, counters exact, the relationship rules of docs/api.md enforced."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from homefeed.feed.errors import Forbidden, InvalidInput, NotFound
from homefeed.feed.records import User
from homefeed.feed.services import Services


async def make_users(services: Services, *handles: str) -> list[User]:
    return [await services.users.create(h, h, "x") for h in handles]


async def counts(services: Services, user: User) -> tuple[int, int]:
    """(followerCount, followingCount) as stored now."""
    (fresh,) = await services.users.by_ids([user.id])
    assert fresh is not None and fresh.follower_count is not None and fresh.following_count is not None
    return fresh.follower_count, fresh.following_count


async def edges(services: Services) -> tuple[set[tuple[int, int]], set[tuple[int, int]]]:
    """Both copies of the follow graph, as (follower, followee) pairs."""
    forward = await services.pool.fetch("SELECT follower_id, followee_id FROM follows")
    reverse = await services.pool.fetch("SELECT follower_id, followee_id FROM followers")
    return ({(r[0], r[1]) for r in forward}, {(r[0], r[1]) for r in reverse})


async def test_follow_is_idempotent_and_counts_once(services: Services) -> None:
    a, b = await make_users(services, "a", "b")
    for _ in range(3):
        await services.relations.follow(a.id, b.id)
    assert await counts(services, a) == (0, 1)
    assert await counts(services, b) == (1, 0)
    assert await edges(services) == ({(a.id, b.id)}, {(a.id, b.id)})
    for _ in range(3):
        await services.relations.unfollow(a.id, b.id)
    assert await counts(services, a) == (0, 0)
    assert await counts(services, b) == (0, 0)
    assert await edges(services) == (set(), set())


async def test_concurrent_follows_and_unfollows_keep_counters_exact(services: Services) -> None:
    star, *fans = await make_users(services, "star", *(f"fan{i}" for i in range(8)))
    # Every fan follows the star four times at once: one edge each.
    await asyncio.gather(*(services.relations.follow(f.id, star.id) for f in fans for _ in range(4)))
    assert await counts(services, star) == (len(fans), 0)
    for f in fans:
        assert await counts(services, f) == (0, 1)
    # Half unfollow, concurrently and repeatedly, while the other half follow again.
    leaving, staying = fans[:4], fans[4:]
    await asyncio.gather(
        *(services.relations.unfollow(f.id, star.id) for f in leaving for _ in range(3)),
        *(services.relations.follow(f.id, star.id) for f in staying for _ in range(3)),
    )
    assert await counts(services, star) == (len(staying), 0)
    forward, reverse = await edges(services)
    assert forward == reverse == {(f.id, star.id) for f in staying}


async def test_cannot_follow_block_or_mute_yourself(services: Services) -> None:
    (a,) = await make_users(services, "a")
    for verb in ("follow", "unfollow", "block", "unblock", "mute", "unmute"):
        with pytest.raises(InvalidInput):
            await getattr(services.relations, verb)(a.id, a.id)
    assert await counts(services, a) == (0, 0)


async def test_missing_user_is_not_found(services: Services) -> None:
    (a,) = await make_users(services, "a")
    for verb in ("follow", "unfollow", "block", "unblock", "mute", "unmute"):
        with pytest.raises(NotFound):
            await getattr(services.relations, verb)(a.id, a.id + 10_000_000)
    assert await counts(services, a) == (0, 0)


@pytest.mark.parametrize("blocker_is_follower", [True, False])
async def test_follow_across_a_block_is_forbidden(services: Services, blocker_is_follower: bool) -> None:
    a, b = await make_users(services, "a", "b")
    if blocker_is_follower:
        await services.relations.block(a.id, b.id)
    else:
        await services.relations.block(b.id, a.id)
    with pytest.raises(Forbidden):
        await services.relations.follow(a.id, b.id)
    with pytest.raises(Forbidden):
        await services.relations.follow(b.id, a.id)
    assert await edges(services) == (set(), set())
    assert await counts(services, a) == (0, 0)


async def test_block_removes_follows_both_ways_and_unblock_restores_nothing(services: Services) -> None:
    a, b, c = await make_users(services, "a", "b", "c")
    await services.relations.follow(a.id, b.id)
    await services.relations.follow(b.id, a.id)
    await services.relations.follow(c.id, b.id)
    await services.relations.block(a.id, b.id)
    await services.relations.block(a.id, b.id)  # idempotent
    assert await edges(services) == ({(c.id, b.id)}, {(c.id, b.id)})
    assert await counts(services, a) == (0, 0)
    assert await counts(services, b) == (1, 0)
    assert await services.relations.blocked_either_way(b.id, a.id)

    await services.relations.unblock(a.id, b.id)
    await services.relations.unblock(a.id, b.id)  # idempotent
    assert not await services.relations.blocked_either_way(a.id, b.id)
    assert await edges(services) == ({(c.id, b.id)}, {(c.id, b.id)})
    # Lifted: following works again.
    await services.relations.follow(a.id, b.id)
    assert await counts(services, b) == (2, 0)


async def test_block_racing_follow_never_leaves_a_follow(services: Services) -> None:
    a, b = await make_users(services, "a", "b")

    async def try_follow() -> None:
        with contextlib.suppress(Forbidden):
            await services.relations.follow(b.id, a.id)

    await asyncio.gather(services.relations.block(a.id, b.id), *(try_follow() for _ in range(5)))
    assert await edges(services) == (set(), set())
    assert await counts(services, a) == (0, 0)
    assert await counts(services, b) == (0, 0)


async def test_mute_is_idempotent_and_changes_no_follow(services: Services) -> None:
    a, b = await make_users(services, "a", "b")
    await services.relations.follow(a.id, b.id)
    for _ in range(2):
        await services.relations.mute(a.id, b.id)
    assert await services.pool.fetchval("SELECT count(*) FROM mutes") == 1
    assert await edges(services) == ({(a.id, b.id)}, {(a.id, b.id)})
    for _ in range(2):
        await services.relations.unmute(a.id, b.id)
    assert await services.pool.fetchval("SELECT count(*) FROM mutes") == 0


async def test_follows_among(services: Services) -> None:
    a, b, c, d = await make_users(services, "a", "b", "c", "d")
    await services.relations.follow(a.id, b.id)
    await services.relations.follow(a.id, d.id)
    assert await services.relations.follows_among(a.id, [b.id, c.id, d.id]) == {b.id, d.id}
    assert await services.relations.follows_among(b.id, [a.id]) == set()
