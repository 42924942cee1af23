"""homefeed.feed.records: User, Post and Page, the typed records crossing the engine's boundary."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from homefeed.feed.ids import EPOCH_MS, make_id
from homefeed.feed.records import Page, Post, User
from homefeed.feed.services import Services

# Milliseconds from the id epoch to ~2093, where ids reach 2**53.
millis = st.integers(min_value=EPOCH_MS, max_value=EPOCH_MS + (2**41 - 1))
sequences = st.integers(min_value=0, max_value=4095)


def a_user(follower_count: int | None = 3, following_count: int | None = 4) -> User:
    return User(1, "alice", "Alice", datetime(2024, 5, 1, tzinfo=UTC), follower_count, following_count)


@given(ms=millis, sequence=sequences)
def test_post_created_at_is_the_time_in_its_id(ms: int, sequence: int) -> None:
    post = Post(id=make_id(ms, sequence), author_id=1, text="t", like_count=0)
    created = post.created_at
    assert created.tzinfo is not None and created.utcoffset() == timedelta(0)
    assert created == datetime.fromtimestamp(ms / 1000, tz=UTC)


@given(a=st.tuples(millis, sequences), b=st.tuples(millis, sequences))
def test_post_times_follow_id_order(a: tuple[int, int], b: tuple[int, int]) -> None:
    first, second = sorted([make_id(*a), make_id(*b)])
    assert Post(first, 1, "x", 0).created_at <= Post(second, 1, "x", 0).created_at


def test_user_and_post_are_immutable_values() -> None:
    user = a_user()
    assert user == a_user() and hash(user) == hash(a_user())
    assert user != a_user(follower_count=4)
    with pytest.raises(AttributeError):
        user.handle = "mallory"  # type: ignore[misc]
    post = Post(5, 1, "hello", 0)
    assert post == Post(id=5, author_id=1, text="hello", like_count=0)
    with pytest.raises(AttributeError):
        post.like_count = 10  # type: ignore[misc]


def test_field_order_is_what_positional_readers_unpack() -> None:
    # Callers build and unpack these positionally (they are tuples for speed).
    assert User._fields == (
        "id",
        "handle",
        "display_name",
        "created_at",
        "follower_count",
        "following_count",
    )
    assert Post._fields == ("id", "author_id", "text", "like_count")
    uid, handle, *_ = a_user()
    assert (uid, handle) == (1, "alice")


def test_user_counts_may_be_left_out() -> None:
    partial = a_user(follower_count=None, following_count=None)
    assert partial.follower_count is None and partial.following_count is None


def test_page_defaults_mean_not_read() -> None:
    page = Page([3, 2, 1], has_next=True)
    assert page.posts == () and page.authors == ()
    assert page.liked is None and page.followed is None and page.viewer_known is None


def test_page_is_frozen_and_slotted() -> None:
    page = Page([1], has_next=False, liked=frozenset({1}))
    with pytest.raises(dataclasses.FrozenInstanceError):
        page.has_next = True  # type: ignore[misc]
    assert not hasattr(page, "__dict__")
    assert page == Page([1], has_next=False, liked=frozenset({1}))
    assert page != Page([1], has_next=False, liked=frozenset())


async def test_records_read_from_the_database_carry_real_times(services: Services) -> None:
    before = datetime.now(UTC)
    user = await services.users.create("timed", "Timed", "x")
    post = await services.posts.create(user.id, "now")
    after = datetime.now(UTC)
    slack = timedelta(seconds=5)  # the database's clock is this machine's, give or take
    assert user.created_at.tzinfo is not None
    assert before - slack <= user.created_at <= after + slack
    assert before - slack <= post.created_at <= after + slack
    assert isinstance(user, User) and isinstance(post, Post)
    assert (user.follower_count, user.following_count) == (0, 0)
    (read,) = await services.posts.by_ids([post.id])
    assert read == post
