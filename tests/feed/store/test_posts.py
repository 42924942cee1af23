"""homefeed.feed.store.posts: each write and its outbox job commit together; reads page and filter right."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest
from hypothesis import given
from hypothesis import strategies as st

from homefeed.feed.config import Settings
from homefeed.feed.errors import FeedError, Forbidden, InvalidInput, NotFound
from homefeed.feed.records import User
from homefeed.feed.services import Services
from homefeed.feed.store.posts import MAX_POST_LENGTH, Posts, clean_text
from homefeed.feed.store.text import storable

# PostgreSQL text cannot hold NUL; that case has its own test below.
no_nul = st.characters(codec="utf-8", exclude_characters="\x00")


async def author(services: Services, handle: str = "author") -> User:
    return await services.users.create(handle, handle, "x")


async def rows(services: Services) -> tuple[list[tuple[int, int]], list[tuple[str, int, int]]]:
    """(author, post id) of every post, and (kind, actor, subject) of every outbox job."""
    posts = await services.pool.fetch("SELECT author_id, id FROM posts ORDER BY id")
    jobs = await services.pool.fetch("SELECT kind, actor_id, subject_id FROM outbox ORDER BY id")
    return [(r[0], r[1]) for r in posts], [(r[0], r[1], r[2]) for r in jobs]


# --- text ------------------------------------------------------------------------------------


@given(text=st.text(max_size=MAX_POST_LENGTH + 40))
def test_clean_text_trims_and_bounds(text: str) -> None:
    trimmed = text.strip()
    if 1 <= len(trimmed) <= MAX_POST_LENGTH and storable(trimmed):
        assert clean_text(text) == trimmed
    else:
        with pytest.raises(InvalidInput):
            clean_text(text)


def test_length_limit_is_counted_after_trimming() -> None:
    assert MAX_POST_LENGTH == 280
    assert clean_text("  \n" + "a" * 280 + "\t ") == "a" * 280
    assert clean_text("\u00e9" * 280) == "\u00e9" * 280  # characters, not bytes
    assert clean_text("\U0001f600" * 280) == "\U0001f600" * 280
    for bad in ("a" * 281, "", "   ", "\n\t", "\u3000\u2003"):
        with pytest.raises(InvalidInput):
            clean_text(bad)


@given(body=st.text(no_nul, min_size=1, max_size=MAX_POST_LENGTH), pad=st.sampled_from(["", " ", "\n\t "]))
async def test_stored_text_is_the_trimmed_text(services: Services, body: str, pad: str) -> None:
    user = await services.users.by_handle("author") or await author(services)
    try:
        expected = clean_text(pad + body + pad)
    except InvalidInput:
        return  # all whitespace: covered above
    post = await services.posts.create(user.id, pad + body + pad)
    assert post.text == expected
    (read,) = await services.posts.by_ids([post.id])
    assert read is not None and read.text == expected


@pytest.mark.parametrize("text", ["a\x00b", "\x00", "a\ud800b"])
async def test_text_postgres_cannot_store_is_invalid_input(services: Services, text: str) -> None:
    user = await author(services)
    with pytest.raises(InvalidInput):
        await services.posts.create(user.id, text)


async def test_text_postgres_cannot_store_writes_nothing(services: Services) -> None:
    # Whatever error it raises today, nothing half-written may remain.
    user = await author(services)
    with pytest.raises((FeedError, asyncpg.DataError)):
        await services.posts.create(user.id, "a\x00b")
    assert await rows(services) == ([], [])


# --- create ----------------------------------------------------------------------------------


async def test_create_writes_the_post_and_its_fanout_job(services: Services) -> None:
    user = await author(services)
    post = await services.posts.create(user.id, "  hello  ")
    assert (post.author_id, post.text, post.like_count) == (user.id, "hello", 0)
    assert await rows(services) == ([(user.id, post.id)], [("post", user.id, post.id)])


@pytest.mark.parametrize("text", ["", "   ", "x" * 281])
async def test_invalid_text_writes_neither_row(services: Services, text: str) -> None:
    user = await author(services)
    with pytest.raises(InvalidInput):
        await services.posts.create(user.id, text)
    assert await rows(services) == ([], [])


async def test_unknown_author_writes_neither_row(services: Services) -> None:
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        await services.posts.create(123_456_789, "from nobody")
    assert await rows(services) == ([], [])


async def test_a_failing_outbox_insert_takes_the_post_with_it(services: Services) -> None:
    # Make the job's insert fail (in this test's schema only): the post must not stay behind.
    user = await author(services)
    await services.pool.execute("ALTER TABLE outbox ADD CONSTRAINT no_post_jobs CHECK (kind <> 'post')")
    with pytest.raises(asyncpg.CheckViolationError):
        await services.posts.create(user.id, "orphan?")
    assert await rows(services) == ([], [])


async def test_concurrent_creates_each_get_exactly_one_job(services: Services) -> None:
    users = [await author(services, f"a{i}") for i in range(4)]
    made = await asyncio.gather(*(services.posts.create(u.id, f"post {n}") for u in users for n in range(10)))
    posts, jobs = await rows(services)
    assert len({p.id for p in made}) == 40
    assert sorted(posts) == sorted((p.author_id, p.id) for p in made)
    assert sorted(jobs) == sorted(("post", p.author_id, p.id) for p in made)


# --- delete ----------------------------------------------------------------------------------


async def test_delete_hides_the_post_and_queues_one_job(services: Services) -> None:
    user = await author(services)
    post = await services.posts.create(user.id, "soon gone")
    await services.posts.delete(user.id, post.id)
    await services.posts.delete(user.id, post.id)  # again: a no-op
    assert await services.posts.by_ids([post.id]) == [None]
    assert await services.posts.recent_ids(user.id, 10) == []
    assert await services.posts.by_author(user.id, None, 10) == []
    _, jobs = await rows(services)
    assert jobs == [("post", user.id, post.id), ("delete", user.id, post.id)]
    # Soft: the row stays, marked.
    assert await services.pool.fetchval("SELECT deleted_at IS NOT NULL FROM posts WHERE id = $1", post.id)


async def test_only_the_author_may_delete(services: Services) -> None:
    owner, other = await author(services, "owner"), await author(services, "other")
    post = await services.posts.create(owner.id, "mine")
    with pytest.raises(Forbidden):
        await services.posts.delete(other.id, post.id)
    assert await services.posts.by_ids([post.id]) == [post]
    _, jobs = await rows(services)
    assert jobs == [("post", owner.id, post.id)]


async def test_deleting_a_missing_post_is_not_found(services: Services) -> None:
    user = await author(services)
    with pytest.raises(NotFound):
        await services.posts.delete(user.id, 987_654_321)
    assert await rows(services) == ([], [])


async def test_a_failing_delete_job_keeps_the_post_live(services: Services) -> None:
    user = await author(services)
    post = await services.posts.create(user.id, "stays")
    await services.pool.execute("ALTER TABLE outbox ADD CONSTRAINT no_delete_jobs CHECK (kind <> 'delete')")
    with pytest.raises(asyncpg.CheckViolationError):
        await services.posts.delete(user.id, post.id)
    assert await services.posts.by_ids([post.id]) == [post]


async def test_concurrent_deletes_all_succeed_and_leave_it_deleted(services: Services) -> None:
    user = await author(services)
    post = await services.posts.create(user.id, "raced")
    await asyncio.gather(*(services.posts.delete(user.id, post.id) for _ in range(8)))
    assert await services.posts.by_ids([post.id]) == [None]
    _, jobs = await rows(services)
    assert jobs.count(("delete", user.id, post.id)) >= 1


async def test_overlapping_deletes_queue_one_job(settings_: Settings, services: Services) -> None:
    user = await author(services)
    post = await services.posts.create(user.id, "raced")
    tag = f"overlap_{uuid.uuid4().hex[:10]}"
    assert settings_.database_url
    pool = await asyncpg.create_pool(
        settings_.database_url, min_size=2, server_settings={"application_name": tag}
    )
    assert pool is not None
    try:
        deleting = Posts(pool)
        async with services.pool.acquire() as locker, locker.transaction():
            # Hold the row so both deletes take their snapshot, then queue for it.
            await locker.execute("SELECT 1 FROM posts WHERE id = $1 FOR UPDATE", post.id)
            both = asyncio.gather(deleting.delete(user.id, post.id), deleting.delete(user.id, post.id))
            for _ in range(500):
                waiting = await locker.fetchval(
                    """SELECT count(*) FROM pg_stat_activity
                       WHERE application_name = $1 AND wait_event_type = 'Lock'""",
                    tag,
                )
                if waiting == 2:
                    break
                await asyncio.sleep(0.01)
            assert waiting == 2, "the deletes never queued behind the lock"
        await both  # the lock is gone: they go one after the other
    finally:
        await pool.close()
    _, jobs = await rows(services)
    assert jobs.count(("delete", user.id, post.id)) == 1


# --- reads -----------------------------------------------------------------------------------


async def test_by_ids_aligns_with_its_input(services: Services) -> None:
    user = await author(services)
    a = await services.posts.create(user.id, "a")
    b = await services.posts.create(user.id, "b")
    gone = await services.posts.create(user.id, "gone")
    await services.posts.delete(user.id, gone.id)
    assert await services.posts.by_ids([b.id, 1, a.id, gone.id, b.id]) == [b, None, a, None, b]
    assert await services.posts.by_ids([]) == []


async def test_recent_ids_newest_first_with_or_without_deleted(services: Services) -> None:
    user, other = await author(services, "me"), await author(services, "other")
    ids = [(await services.posts.create(user.id, f"p{i}")).id for i in range(6)]
    await services.posts.create(other.id, "not mine")
    await services.posts.delete(user.id, ids[4])
    await services.posts.delete(user.id, ids[1])
    newest_first = ids[::-1]
    live = [i for i in newest_first if i not in (ids[4], ids[1])]
    assert await services.posts.recent_ids(user.id, 10) == live
    assert await services.posts.recent_ids(user.id, 2) == live[:2]
    assert await services.posts.recent_ids(user.id, 10, include_deleted=True) == newest_first
    assert await services.posts.recent_ids(user.id, 3, include_deleted=True) == newest_first[:3]
    assert await services.posts.recent_ids(user.id, 0) == []


@given(page=st.integers(min_value=1, max_value=8))
async def test_by_author_pages_cover_every_live_post_once(services: Services, page: int) -> None:
    me, other = await services.users.by_handle("pager"), await services.users.by_handle("noise")
    if me is None or other is None:  # the first example writes the data the others page through
        me, other = await author(services, "pager"), await author(services, "noise")
        ids = [(await services.posts.create(me.id, f"p{i}")).id for i in range(17)]
        await asyncio.gather(*(services.posts.create(other.id, "noise") for _ in range(5)))
        for victim in (ids[0], ids[8], ids[16]):
            await services.posts.delete(me.id, victim)
    expected = await services.posts.recent_ids(me.id, 100)
    assert len(expected) == 14
    seen: list[int] = []
    before: int | None = None
    while chunk := await services.posts.by_author(me.id, before, page):
        assert len(chunk) <= page
        seen.extend(chunk)
        before = chunk[-1]
    assert seen == expected  # newest first, none twice, none missing, no deleted, no one else's


async def test_by_author_before_is_exclusive(services: Services) -> None:
    user = await author(services)
    a, b, c = [(await services.posts.create(user.id, t)).id for t in "abc"]
    assert await services.posts.by_author(user.id, c, 10) == [b, a]
    assert await services.posts.by_author(user.id, a, 10) == []
    assert await services.posts.by_author(user.id, c + 1, 1) == [c]
