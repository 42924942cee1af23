"""homefeed.feed.store.users: handle and display-name rules, case-insensitive handles, look-ups, counts."""

from __future__ import annotations

import asyncio
import re
import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from homefeed.feed.errors import FeedError, InvalidInput
from homefeed.feed.records import User
from homefeed.feed.services import Services
from homefeed.feed.store.text import storable
from homefeed.feed.store.users import MAX_DISPLAY_NAME, clean_display_name, clean_handle

HANDLE_CHARS = string.ascii_letters + string.digits + "_"
valid_handles = st.text(alphabet=HANDLE_CHARS, min_size=1, max_size=30)
# What a client may type around a handle: whitespace, and one leading @.
padding = st.sampled_from(["", " ", "\t", "\n ", "\u3000"])


# --- handles ---------------------------------------------------------------------------------


@given(handle=valid_handles, left=padding, right=padding, at=st.booleans())
def test_valid_handles_come_back_bare(handle: str, left: str, right: str, at: bool) -> None:
    assert clean_handle(left + ("@" if at else "") + handle + right) == handle


@given(text=st.text(max_size=40))
def test_a_handle_is_accepted_exactly_when_the_documented_rule_allows(text: str) -> None:
    bare = text.strip().removeprefix("@")
    if re.fullmatch(r"[A-Za-z0-9_]{1,30}", bare):
        assert clean_handle(text) == bare
    else:
        with pytest.raises(InvalidInput):
            clean_handle(text)


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "@",
        "  @  ",
        "@@alice",
        "al ice",
        "alice!",
        "a" * 31,
        "@" + "a" * 31,
        "al-ice",
        "al.ice",
        "\u00e9lodie",  # letters, but not ASCII ones
        "\uff41lice",  # fullwidth a
        "\u0661\u0662",  # Arabic-Indic digits
        "alice\n\u200b",
        "alice\x00",
        "ali\nce",
    ],
)
def test_invalid_handles_are_rejected(bad: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        clean_handle(bad)
    assert caught.value.code == "BAD_USER_INPUT"


def test_handle_length_bounds() -> None:
    assert clean_handle("a") == "a"
    assert clean_handle("a" * 30) == "a" * 30
    assert clean_handle("@" + "_" * 30) == "_" * 30


# --- display names ---------------------------------------------------------------------------


@given(name=st.one_of(st.none(), st.text(max_size=MAX_DISPLAY_NAME + 10)), handle=valid_handles)
def test_display_name_is_trimmed_defaults_to_the_handle_and_is_bounded(name: str | None, handle: str) -> None:
    trimmed = (name or "").strip()
    if len(trimmed) > MAX_DISPLAY_NAME or not storable(trimmed):
        with pytest.raises(InvalidInput):
            clean_display_name(name, handle)
    else:
        assert clean_display_name(name, handle) == (trimmed or handle)


def test_display_name_bounds() -> None:
    assert MAX_DISPLAY_NAME == 50
    assert clean_display_name(None, "bob") == "bob"
    assert clean_display_name("", "bob") == "bob"
    assert clean_display_name(" \t\n", "bob") == "bob"
    assert clean_display_name("  Bob B.  ", "bob") == "Bob B."
    assert clean_display_name("\u00e9" * 50, "bob") == "\u00e9" * 50  # characters, not bytes
    with pytest.raises(InvalidInput):
        clean_display_name("x" * 51, "bob")


async def test_stored_display_names_are_what_cleaning_gave(services: Services) -> None:
    for handle, given_name in [("plain", None), ("spaced", "  Ann  "), ("longest", "\U0001f600" * 50)]:
        user = await services.users.create(handle, clean_display_name(given_name, handle), "x")
        (read,) = await services.users.by_ids([user.id])
        assert read is not None and read.display_name == (given_name or handle).strip()


async def test_display_name_postgres_cannot_store_is_invalid_input(services: Services) -> None:
    with pytest.raises(InvalidInput):
        await services.users.create("nul", clean_display_name("Nu\x00ll", "nul"), "x")


# --- create and look-ups ---------------------------------------------------------------------


async def test_create_returns_the_stored_user(services: Services) -> None:
    user = await services.users.create("Alice_1", "Alice", "hash")
    assert (user.handle, user.display_name) == ("Alice_1", "Alice")
    assert (user.follower_count, user.following_count) == (0, 0)
    assert await services.users.by_ids([user.id]) == [user]
    assert await services.users.exists(user.id)
    assert not await services.users.exists(user.id + 1_000_000)


@pytest.mark.parametrize("again", ["alice", "ALICE", "aLiCe", "Alice"])
async def test_handles_are_unique_ignoring_case(services: Services, again: str) -> None:
    first = await services.users.create("Alice", "First", "h1")
    with pytest.raises(InvalidInput, match="taken") as caught:
        await services.users.create(again, "Second", "h2")
    assert caught.value.code == "BAD_USER_INPUT"
    assert await services.pool.fetchval("SELECT count(*) FROM users") == 1
    assert await services.users.by_handle(again) == first  # the first one is untouched


async def test_racing_sign_ups_for_one_handle_leave_one_user(services: Services) -> None:
    spellings = ["bob", "BOB", "Bob", "bOb", "boB", "BoB"]
    outcomes = await asyncio.gather(
        *(services.users.create(h, h, "x") for h in spellings), return_exceptions=True
    )
    made = [o for o in outcomes if isinstance(o, User)]
    refused = [o for o in outcomes if isinstance(o, InvalidInput)]
    assert len(made) == 1 and len(refused) == len(spellings) - 1, outcomes
    assert await services.pool.fetchval("SELECT count(*) FROM users") == 1


@given(handle=valid_handles)
async def test_by_handle_and_credentials_ignore_case(services: Services, handle: str) -> None:
    user = await services.users.by_handle(handle)
    if user is None:
        user = await services.users.create(handle, handle, f"hash-of-{handle.lower()}")
    for spelling in (handle, handle.lower(), handle.upper(), handle.swapcase()):
        assert await services.users.by_handle(spelling) == user
        found = await services.users.credentials(spelling)
        assert found is not None and found[0] == user
        assert found[1] == f"hash-of-{handle.lower()}"


async def test_unknown_handles_find_nobody(services: Services) -> None:
    await services.users.create("alice", "Alice", "x")
    for other in ("alic", "alice_", "bob", "%", "_lice", "al%"):  # LIKE wildcards mean nothing
        assert await services.users.by_handle(other) is None
        assert await services.users.credentials(other) is None


async def test_a_handle_postgres_cannot_store_finds_nobody(services: Services) -> None:
    await services.users.create("alice", "Alice", "x")
    assert await services.users.by_handle("alice\x00") is None
    assert await services.users.credentials("alice\x00") is None


async def test_by_ids_aligns_with_its_input(services: Services) -> None:
    a = await services.users.create("a", "A", "x")
    b = await services.users.create("b", "B", "x")
    assert await services.users.by_ids([b.id, 1, a.id, b.id]) == [b, None, a, b]
    assert await services.users.by_ids([]) == []


# --- counts ----------------------------------------------------------------------------------


async def counts(services: Services, *users: User) -> list[tuple[int | None, int | None]]:
    fresh = await services.users.by_ids([u.id for u in users])
    return [(f.follower_count, f.following_count) if f else (None, None) for f in fresh]


async def test_counts_follow_the_graph(services: Services) -> None:
    star, fan1, fan2 = [await services.users.create(h, h, "x") for h in ("star", "fan1", "fan2")]
    await services.relations.follow(fan1.id, star.id)
    await services.relations.follow(fan2.id, star.id)
    await services.relations.follow(star.id, fan1.id)
    assert await counts(services, star, fan1, fan2) == [(2, 1), (1, 1), (0, 1)]
    await services.relations.unfollow(fan2.id, star.id)
    assert await counts(services, star, fan1, fan2) == [(1, 1), (1, 1), (0, 0)]
    # The record create returned is a snapshot; by_handle reads the same counts by_ids does.
    assert star.follower_count == 0
    by_handle = await services.users.by_handle("STAR")
    assert by_handle is not None and (by_handle.follower_count, by_handle.following_count) == (1, 1)


async def test_most_followed_orders_by_followers(services: Services) -> None:
    users = [await services.users.create(f"u{i}", "U", "x") for i in range(5)]
    # u0 has 4 followers, u1 3, u2 2, u3 1, u4 none.
    for i, target in enumerate(users):
        for follower in users[i + 1 :]:
            await services.relations.follow(follower.id, target.id)
    top = await services.users.most_followed(3)
    assert [u.handle for u in top] == ["u0", "u1", "u2"]
    assert [u.follower_count for u in top] == [4, 3, 2]
    assert len(await services.users.most_followed(100)) == 5


async def test_errors_are_feed_errors(services: Services) -> None:
    await services.users.create("taken", "T", "x")
    with pytest.raises(FeedError):
        clean_handle("no way")
    with pytest.raises(FeedError):
        clean_display_name("x" * 51, "h")
    with pytest.raises(FeedError):
        await services.users.create("TAKEN", "T", "x")
