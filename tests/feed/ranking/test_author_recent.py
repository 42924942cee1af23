"""The authors' recent engagement counters (`author_recent`, migration 0009) that the ranked read's
engagement rate comes from.

They are written in the same statement as the post, like or unlike they count, so no interleaving
and no failure can leave one without the other: racing likes, unlikes, posts and deletes end with
the counters equal to a recount; a fault injected between a write and its count rolls back both;
and a lost or damaged table is recounted from posts and likes by `rebuild_author_recent`, also
while likes keep arriving.
"""

from __future__ import annotations

import asyncio
import random
import time
from datetime import date, timedelta

import asyncpg
import pytest

from homefeed.feed.errors import NotFound
from homefeed.feed.ranking.features import read_among
from homefeed.feed.services import Services

# What the counters hold for the days a read can still sum (the last 8), zero slots left out.
KEPT = """
SELECT r.author_id, d.day, d.posts, d.likes
FROM author_recent r, unnest(r.days, r.posts, r.likes) AS d (day, posts, likes)
WHERE d.day >= (now() AT TIME ZONE 'UTC')::date - 7 AND (d.posts > 0 OR d.likes > 0)
ORDER BY 1, 2
"""
# The same, recounted from the posts and likes themselves (independently of the rebuild).
RECOUNT = """
SELECT author_id, day, sum(posts)::int AS posts, sum(likes)::int AS likes FROM (
    SELECT author_id, (to_timestamp(((id >> 12) + 1704067200000) / 1000.0) AT TIME ZONE 'UTC')::date AS day,
           1 AS posts, 0 AS likes
    FROM posts
    UNION ALL
    SELECT p.author_id, (l.created_at AT TIME ZONE 'UTC')::date, 0, 1
    FROM likes l JOIN posts p ON p.id = l.post_id
) c
WHERE day >= (now() AT TIME ZONE 'UTC')::date - 7
GROUP BY 1, 2
ORDER BY 1, 2
"""
# Fails every change to one author's counters: a fault between a write and its count.
FAULT = """
CREATE FUNCTION fail_counting() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.author_id = {author} THEN
        RAISE EXCEPTION 'injected fault while counting';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER fail_counting BEFORE INSERT OR UPDATE ON author_recent
    FOR EACH ROW EXECUTE FUNCTION fail_counting();
"""
HEAL = "DROP TRIGGER fail_counting ON author_recent; DROP FUNCTION fail_counting()"


async def users(services: Services, *handles: str) -> list[int]:
    return [(await services.users.create(h, h, "x")).id for h in handles]


async def assert_exact(services: Services) -> None:
    kept = [tuple(r) for r in await services.pool.fetch(KEPT)]
    recounted = [tuple(r) for r in await services.pool.fetch(RECOUNT)]
    assert kept == recounted


async def churn(services: Services, user: int, post_ids: list[int], rng: random.Random, n: int) -> None:
    """Likes and unlikes at random; a post deleted meanwhile refuses them (that is the race)."""
    for _ in range(n):
        post = rng.choice(post_ids)
        try:
            if rng.random() < 0.6:
                await services.likes.like(user, post)
            else:
                await services.likes.unlike(user, post)
        except NotFound:
            pass


async def test_racing_likes_unlikes_posts_and_deletes_leave_them_exact(services: Services) -> None:
    authors = await users(services, "a", "b", "c")
    likers = await users(services, *(f"l{i}" for i in range(10)))
    posts = [await services.posts.create(authors[i % 3], f"p{i}") for i in range(6)]
    ids = [p.id for p in posts]
    rng = random.Random(5)

    async def post_and_delete() -> None:
        for i in range(6):
            made = await services.posts.create(authors[i % 3], f"more {i}")
            ids.append(made.id)  # later churn picks it up
            if i % 2:
                await services.posts.delete(authors[i % 3], made.id)
            await asyncio.sleep(0.01)
        await services.posts.delete(authors[0], posts[0].id)

    await asyncio.gather(
        *(churn(services, u, ids, random.Random(rng.random()), 25) for u in likers),
        *(churn(services, u, ids, random.Random(rng.random()), 25) for u in likers[:4]),
        post_and_delete(),
    )
    await assert_exact(services)
    # The ranked read's engagement rate is the recount's: likes received / posts made.
    live = [i for i in ids if i != posts[0].id]
    found = await read_among(services.pool, authors[0], live, int(time.time() * 1000), 800)
    recount = await services.pool.fetch(RECOUNT)
    rate = {
        a: sum(r["likes"] for r in recount if r["author_id"] == a)
        / max(sum(r["posts"] for r in recount if r["author_id"] == a), 1)
        for a in authors
    }
    got = dict(zip(found.authors.tolist(), found.author_rate.tolist(), strict=True))
    assert got == pytest.approx({a: rate[a] for a in got})
    assert set(got) <= set(authors) and got


async def test_a_fault_between_a_write_and_its_count_keeps_neither(services: Services) -> None:
    author, other, fan = await users(services, "author", "other", "fan")
    post = await services.posts.create(author, "liked before the fault")
    await services.likes.like(fan, post.id)
    unliked = await services.posts.create(author, "to unlike")
    await services.likes.like(fan, unliked.id)
    before = [tuple(r) for r in await services.pool.fetch(KEPT)]
    jobs = await services.pool.fetchval("SELECT count(*) FROM outbox WHERE actor_id = $1", author)
    async with services.pool.acquire() as conn:
        await conn.execute(FAULT.format(author=author))
    try:
        fresh = await services.posts.create(other, "another author counts as usual")
        with pytest.raises(asyncpg.RaiseError, match="injected fault"):
            await services.likes.like(other, post.id)
        with pytest.raises(asyncpg.RaiseError, match="injected fault"):
            await services.likes.unlike(fan, unliked.id)
        with pytest.raises(asyncpg.RaiseError, match="injected fault"):
            await services.posts.create(author, "never made")
    finally:
        async with services.pool.acquire() as conn:
            await conn.execute(HEAL)
    pool = services.pool
    # Neither the like, nor the unlike, nor the post (nor its fan-out job) happened.
    assert await pool.fetchval("SELECT count(*) FROM likes WHERE user_id = $1", other) == 0
    assert await pool.fetchval("SELECT count(*) FROM likes WHERE post_id = $1", unliked.id) == 1
    counts = await pool.fetch("SELECT like_count FROM posts WHERE id = ANY($1)", [post.id, unliked.id])
    assert [r["like_count"] for r in counts] == [1, 1]
    assert await pool.fetchval("SELECT count(*) FROM posts WHERE author_id = $1", author) == 2
    assert await pool.fetchval("SELECT count(*) FROM outbox WHERE actor_id = $1", author) == jobs
    assert await pool.fetchval("SELECT sum(likes) FROM affinity WHERE user_id = $1", other) is None
    kept = [tuple(r) for r in await pool.fetch(KEPT)]
    assert [r for r in kept if r[0] == author] == [r for r in before if r[0] == author]
    assert any(r[0] == other for r in kept) and fresh.author_id == other
    await assert_exact(services)
    # With the fault gone the same writes count.
    await services.likes.like(other, post.id)
    await services.likes.unlike(fan, unliked.id)
    await services.posts.create(author, "made now")
    await assert_exact(services)


async def test_a_lost_or_damaged_table_is_rebuilt_from_posts_and_likes(services: Services) -> None:
    viewer, ann, bob = await users(services, "viewer", "ann", "bob")
    for who in (ann, bob):
        await services.relations.follow(viewer, who)
    posts = [await services.posts.create(ann if i % 2 else bob, f"p{i}") for i in range(6)]
    for i, p in enumerate(posts):
        for fan in (viewer, ann, bob)[: 1 + i % 3]:
            await services.likes.like(fan, p.id)
    ids = [p.id for p in posts]
    now_ms = int(time.time() * 1000)
    rates = (await read_among(services.pool, viewer, ids, now_ms, 800)).author_rate.tolist()
    assert any(rates)
    pool = services.pool
    await pool.execute("TRUNCATE author_recent")  # lost
    assert not any((await read_among(pool, viewer, ids, now_ms, 800)).author_rate.tolist())
    assert await pool.fetchval("SELECT rebuild_author_recent(NULL)") == 2
    await assert_exact(services)
    assert (await read_among(pool, viewer, ids, now_ms, 800)).author_rate.tolist() == rates
    # Damaged: a slot counts too much for ann and bob; rebuilding ann alone repairs ann alone.
    await pool.execute("UPDATE author_recent SET likes = array_fill(7, ARRAY[8])")
    assert await pool.fetchval("SELECT rebuild_author_recent($1)", [ann]) == 1
    kept = {r["author_id"]: r["likes"] for r in await pool.fetch(KEPT)}
    assert kept[ann] == next(r["likes"] for r in await pool.fetch(RECOUNT) if r["author_id"] == ann)
    assert await pool.fetchval("SELECT likes FROM author_recent WHERE author_id = $1", bob) == [7] * 8
    await pool.fetchval("SELECT rebuild_author_recent(NULL)")
    await assert_exact(services)


async def test_a_rebuild_racing_likes_loses_none(services: Services) -> None:
    author, *fans = await users(services, "author", *(f"f{i}" for i in range(8)))
    ids = [(await services.posts.create(author, f"p{i}")).id for i in range(4)]
    rng = random.Random(9)
    done = asyncio.Event()

    async def rebuild() -> int:
        runs = 0
        while not done.is_set():
            await services.pool.fetchval("SELECT rebuild_author_recent(NULL)")
            runs += 1
        return runs

    async def likes() -> None:
        await asyncio.gather(*(churn(services, f, ids, random.Random(rng.random()), 20) for f in fans))
        done.set()

    runs, _ = await asyncio.gather(rebuild(), likes())
    assert runs > 0
    await assert_exact(services)


async def test_the_ring_counts_each_of_the_last_days_apart(services: Services) -> None:
    """Counting by day, as time passes (posts and likes on the current day, unlikes on the day the
    like was counted): the ring's last 7 days always equal per-day sums, though 8 slots hold them."""
    (author,) = await users(services, "author")
    await services.pool.execute("DELETE FROM author_recent")
    start = date(2026, 1, 1)
    rng = random.Random(11)
    per_day: dict[date, list[int]] = {}
    liked_days: list[date] = []
    pool = services.pool
    for offset in range(30):
        today = start + timedelta(days=offset)
        for _ in range(rng.randrange(0, 5)):
            kind = rng.random()
            if kind < 0.3:
                day, add_posts, add_likes = today, 1, 0
            elif kind < 0.75 or not liked_days:
                day, add_posts, add_likes = today, 0, 1
                liked_days.append(today)
            else:  # an unlike, of a like counted on its own day (maybe long ago)
                day = liked_days.pop(rng.randrange(len(liked_days)))
                add_posts, add_likes = 0, -1
            await pool.execute("SELECT author_recent_add($1, $2, $3, $4)", author, day, add_posts, add_likes)
            counts = per_day.setdefault(day, [0, 0])
            counts[0] += add_posts
            counts[1] += add_likes
        row = await pool.fetchrow(
            """SELECT coalesce(sum(d.posts), 0) AS posts, coalesce(sum(d.likes), 0) AS likes
               FROM author_recent r, unnest(r.days, r.posts, r.likes) AS d (day, posts, likes)
               WHERE r.author_id = $1 AND d.day BETWEEN $2 AND $3""",
            author,
            today - timedelta(days=6),
            today,
        )
        assert row is not None
        week = [per_day.get(today - timedelta(days=k), [0, 0]) for k in range(7)]
        assert (row["posts"], row["likes"]) == (sum(w[0] for w in week), sum(w[1] for w in week)), today
