"""The synthetic world's generation: deterministic, and every invariant the loaded tables rely on."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from homefeed.feed.ids import MAX_ID, id_ms, make_id
from homefeed.seed.errors import SeedError
from homefeed.seed.generate import World, generate, mint_ids
from tests.seed.worlds import DAY_MS, NOW_MS, params


def arrays(world: World) -> list[np.ndarray[tuple[int, ...], np.dtype[np.int64]]]:
    return [
        world.user_ids,
        world.user_created_ms,
        world.user_last_seen_ms,
        world.follow_src,
        world.follow_dst,
        world.follow_ms,
        world.followers_order,
        world.post_author,
        world.post_ids,
        world.post_text_bits,
    ]


def check_invariants(world: World) -> None:
    n = world.users
    src, dst = world.follow_src, world.follow_dst
    # No self-follows, no duplicates, sorted in follows' primary-key order.
    assert not np.any(src == dst)
    keys = src * n + dst
    assert np.all(np.diff(keys) > 0)
    assert np.all((src >= 0) & (src < n) & (dst >= 0) & (dst < n))
    # Counters are the degrees.
    assert np.array_equal(world.follower_count, np.bincount(dst, minlength=n))
    assert np.array_equal(world.following_count, np.bincount(src, minlength=n))
    assert np.all(world.following_count <= n - 1)
    # followers_order is a permutation into (followee, follower) order.
    order = world.followers_order
    assert np.array_equal(np.sort(order), np.arange(world.follows))
    assert np.all(np.diff(dst[order] * n + src[order]) > 0)
    # User ids: increasing with join time, which they encode.
    assert np.all(np.diff(world.user_ids) > 0)
    assert np.array_equal((world.user_ids >> 12) + 1_704_067_200_000, world.user_created_ms)
    assert np.all(world.user_last_seen_ms >= world.user_created_ms)
    assert np.all(world.user_last_seen_ms < world.now_ms)
    # Follows happen after both accounts exist, before now.
    assert np.all(world.follow_ms >= np.maximum(world.user_created_ms[src], world.user_created_ms[dst]))
    assert np.all(world.follow_ms < world.now_ms)
    # Post ids: unique, increasing (so in time order), below 2**53, in the past, after the author joined.
    ids = world.post_ids
    assert np.all(np.diff(ids) > 0)
    assert np.all((ids > 0) & (ids <= MAX_ID))
    if world.posts:
        assert id_ms(int(ids[-1])) < world.now_ms
        assert id_ms(int(ids[0])) >= world.now_ms - 31 * DAY_MS
        assert np.all(((ids >> 12) + 1_704_067_200_000) > world.user_created_ms[world.post_author])
    for post in range(min(world.posts, 50)):
        assert 1 <= len(world.post_text(post)) <= 280


def test_generation_is_deterministic_per_seed() -> None:
    a, b, c = generate(params()), generate(params()), generate(params(seed_=8))
    for x, y in zip(arrays(a), arrays(b), strict=True):
        assert np.array_equal(x, y)
    assert not np.array_equal(a.follow_dst, c.follow_dst) or not np.array_equal(a.follow_src, c.follow_src)
    assert not np.array_equal(a.post_ids, c.post_ids)


def test_generation_invariants_at_300_users() -> None:
    world = generate(params())
    check_invariants(world)
    assert world.follows > 300 * 10
    # Roughly three quarters are active.
    assert 0.6 < world.active_users() / world.users < 0.9
    # Popularity is skewed: the top account has many times the median follower count.
    assert world.follower_count.max() > 5 * np.median(world.follower_count)
    # Handles are fixed-width and unique.
    handles = {world.handle(u) for u in range(world.users)}
    assert len(handles) == world.users
    assert world.handle(123) == "user000123"


def test_mint_ids_matches_make_id_and_breaks_ties() -> None:
    ms = np.array([NOW_MS - 5, NOW_MS - 5, NOW_MS - 5, NOW_MS - 4, NOW_MS], dtype=np.int64)
    ids = mint_ids(ms)
    assert ids.tolist() == [
        make_id(NOW_MS - 5, 0),
        make_id(NOW_MS - 5, 1),
        make_id(NOW_MS - 5, 2),
        make_id(NOW_MS - 4, 0),
        make_id(NOW_MS, 0),
    ]
    # More than 4096 in one millisecond spill over instead of colliding.
    crowded = mint_ids(np.full(5000, NOW_MS, dtype=np.int64))
    assert np.all(np.diff(crowded) > 0)


def test_invalid_params_are_refused() -> None:
    with pytest.raises(SeedError, match="--users"):
        generate(params(users=0))
    with pytest.raises(SeedError, match="--posts-per-user"):
        generate(params(posts_per_user=-1))


@given(
    users=st.integers(min_value=1, max_value=120),
    seed_=st.integers(min_value=0, max_value=2**32),
    posts_per_user=st.floats(min_value=0, max_value=8),
    median=st.floats(min_value=1, max_value=400),
)
def test_generation_invariants_hold_for_any_small_world(
    users: int, seed_: int, posts_per_user: float, median: float
) -> None:
    world = generate(params(users=users, seed_=seed_, posts_per_user=posts_per_user, median_followees=median))
    check_invariants(world)
    if users > 1:
        assert np.all(world.following_count >= 1)
