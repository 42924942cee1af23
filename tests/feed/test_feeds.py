"""The hybrid read against the pull reference, through the paths that make it hard."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from homefeed.feed import pulled_of
from homefeed.feed.config import Settings
from homefeed.feed.feeds import RecentCache
from homefeed.feed.records import User
from homefeed.feed.redis_client import open_redis
from homefeed.feed.services import Services, build_services
from homefeed.feed.store.pool import create_pool
from homefeed.feed.timeline.encoding import decode
from homefeed.feed.timeline.keys import Keys
from homefeed.feed.timeline.lists import ListRead
from homefeed.feed.timeline.slots import key_slot
from homefeed.workers.fanout_worker import FanoutWorker
from tests.conftest import FAST_PASSWORDS, ServicesFactory, delete_prefix
from tests.counting_redis import counting_client


async def raw(services: Services, key: str) -> bytes | None:
    """A list as stored in Redis."""
    value = await services.redis.get(key)
    assert value is None or isinstance(value, bytes)
    return value


async def user(services: Services, handle: str) -> User:
    return await services.users.create(handle, handle, "x")


async def walk(services: Services, viewer: int, page: int, *, pull: bool = False) -> list[int]:
    """Every id of a home feed, page by page; checks no page is short unless it is the last."""
    ids: list[int] = []
    before = None
    while True:
        read = services.feeds.pull_page if pull else services.feeds.home
        got = await read(viewer, page, before)
        ids += got.post_ids
        if not got.has_next:
            return ids
        assert len(got.post_ids) == page
        before = got.post_ids[-1]


async def follow(services: Services, a: User, b: User) -> None:
    await services.relations.follow(a.id, b.id)
    await services.feeds.after_follow_change(a.id, b.id)


async def test_feed_pages_past_the_timeline_bound_into_postgresql(make_services: ServicesFactory) -> None:
    services = await make_services(timeline_size=5, celebrity_threshold=math.inf)
    alice, bob, carol = [await user(services, h) for h in ("alice", "bob", "carol")]
    await follow(services, alice, bob)
    await follow(services, alice, carol)
    await walk(services, alice.id, 3)  # builds alice's timeline (cold path)
    for i in range(17):
        await services.posts.create([bob, carol, alice][i % 3].id, f"post {i}")
    await FanoutWorker(services).drain()
    expected = await walk(services, alice.id, 4, pull=True)
    assert len(expected) == 17
    for page in (1, 2, 4, 7, 100):
        assert await walk(services, alice.id, page) == expected


async def test_cold_rebuild_happens_once_for_concurrent_readers(services: Services) -> None:
    alice, bob = await user(services, "alice"), await user(services, "bob")
    await services.relations.follow(alice.id, bob.id)
    posts = [await services.posts.create(bob.id, f"p{i}") for i in range(5)]
    rebuilds = 0
    original = services.feeds.rebuild_timeline

    async def counting(user_id: int) -> None:
        nonlocal rebuilds
        rebuilds += 1
        await asyncio.sleep(0.05)  # keep the lock held while the others arrive
        await original(user_id)

    services.feeds.rebuild_timeline = counting  # type: ignore[method-assign]
    pages = await asyncio.gather(*(services.feeds.home(alice.id, 10, None) for _ in range(8)))
    assert rebuilds == 1
    expected = [p.id for p in reversed(posts)]
    assert all(p.post_ids == expected for p in pages)
    # The next read is served from the rebuilt timeline.
    assert await services.redis.exists(Keys(services.settings.redis_prefix).timeline(alice.id))
    assert (await services.feeds.home(alice.id, 10, None)).post_ids == expected


async def test_reads_survive_redis_being_down_and_flushed(services: Services) -> None:
    alice, bob = await user(services, "alice"), await user(services, "bob")
    await follow(services, alice, bob)
    first = await services.posts.create(bob.id, "one")
    await FanoutWorker(services).drain()
    assert (await services.feeds.home(alice.id, 5, None)).post_ids == [first.id]

    # Redis unreachable: reads come from PostgreSQL, writes still commit.
    assert services.settings.database_url
    dead = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    down = build_services(
        services.settings.with_(redis_url="redis://127.0.0.1:1/0"),
        services.pool,
        dead,
        passwords=FAST_PASSWORDS,
    )
    second = await down.posts.create(bob.id, "two")
    assert (await down.feeds.home(alice.id, 5, None)).post_ids == [second.id, first.id]
    await down.feeds.close()  # its lanes go back to the shared pool
    await dead.aclose()

    # Redis back but empty: the cold path rebuilds, nothing is lost. Only this test's keys are
    # lost: a FLUSHDB would wipe other test runs sharing the server, as it would this one's.
    neighbour = f"{services.settings.redis_prefix}-neighbour:key"
    await services.redis.set(neighbour, b"another run's", ex=60)
    await delete_prefix(services.redis, services.settings.redis_prefix)
    assert await services.redis.get(neighbour) == b"another run's"
    await services.redis.delete(neighbour)
    await FanoutWorker(services).drain()
    assert (await services.feeds.home(alice.id, 5, None)).post_ids == [second.id, first.id]
    assert (await services.feeds.home(alice.id, 5, None)).post_ids == [second.id, first.id]


async def test_inactive_followers_are_skipped_and_rebuilt_on_return(services: Services) -> None:
    alice, bob = await user(services, "alice"), await user(services, "bob")
    await follow(services, alice, bob)
    await walk(services, alice.id, 5)
    await FanoutWorker(services).drain()  # the follow's own upkeep job
    await services.pool.execute(
        "UPDATE users SET last_seen_at = now() - interval '30 days' WHERE id = $1", alice.id
    )
    post = await services.posts.create(bob.id, "while you were away")
    await FanoutWorker(services).drain()
    timeline = Keys(services.settings.redis_prefix).timeline(alice.id)
    assert post.id not in decode(await raw(services, timeline)).ids
    # Her timeline would have expired with her activity; simulate it, then she comes back.
    await services.redis.delete(timeline)
    assert (await services.feeds.home(alice.id, 5, None)).post_ids == [post.id]


async def test_follow_shows_old_posts_on_the_next_read_and_unfollow_hides_them(services: Services) -> None:
    alice, bob = await user(services, "alice"), await user(services, "bob")
    await walk(services, alice.id, 5)
    old = await services.posts.create(bob.id, "before you followed")
    await FanoutWorker(services).drain()
    await follow(services, alice, bob)
    assert (await services.feeds.home(alice.id, 5, None)).post_ids == [old.id]
    await services.relations.unfollow(alice.id, bob.id)
    assert (await services.feeds.home(alice.id, 5, None)).post_ids == []


async def test_which_pulled_authors_a_viewer_follows_is_kept_and_a_follow_elsewhere_refreshes_it(
    settings_: Settings, services: Services
) -> None:
    # Reader: another process's engine, whose statements are recorded.
    statements: list[str] = []
    assert settings_.database_url and settings_.redis_url
    pool = await create_pool(settings_.database_url, on_query=lambda q: statements.append(q.query))
    reader = build_services(settings_, pool, await open_redis(settings_.redis_url), passwords=FAST_PASSWORDS)
    try:
        alice, star, carol = [await user(services, h) for h in ("alice", "star", "carol")]
        await follow(services, carol, star)
        await services.pool.execute(
            "UPDATE users SET fanout_mode = 1, pull_from = next_id() WHERE id = $1", star.id
        )
        await services.feeds.rebuild_recent(star.id)
        first = await services.posts.create(star.id, "pulled, before alice follows")
        await services.feeds.push_recent(star.id, first.id)

        assert (await reader.feeds.home(carol.id, 5, None)).post_ids == [first.id]
        assert (await reader.feeds.home(alice.id, 5, None)).post_ids == []
        statements.clear()
        assert (await reader.feeds.home(alice.id, 5, None)).post_ids == []
        assert not [s for s in statements if "followee_id = ANY" in s]  # kept: no look-up per read

        # Alice follows the star through another process; the star's next post is pulled only.
        await follow(services, alice, star)
        later = await services.posts.create(star.id, "pulled, after alice follows")
        await services.feeds.push_recent(star.id, later.id)
        assert (await reader.feeds.home(alice.id, 5, None)).post_ids == [later.id, first.id]
        await services.relations.unfollow(alice.id, star.id)
        await services.feeds.after_follow_change(alice.id, star.id)
        assert (await reader.feeds.home(alice.id, 5, None)).post_ids == []
    finally:
        await reader.close()


async def test_pulled_authors_of_a_viewer_are_shared_by_processes_and_a_follow_racing_their_look_up_wins(
    settings_: Settings, services: Services
) -> None:
    assert settings_.database_url and settings_.redis_url
    statements: list[str] = []

    # Pulled authors kept as in production (tests default to keeping nothing, which looks the
    # viewer's pulled authors up by a join on every read).
    kept = settings_.with_(celebrity_cache_ms=500)

    async def reader_process() -> Services:
        pool = await create_pool(settings_.database_url or "", on_query=lambda q: statements.append(q.query))
        redis = await open_redis(settings_.redis_url or "")
        return build_services(kept, pool, redis, passwords=FAST_PASSWORDS)

    alice, star, carol = [await user(services, h) for h in ("alice", "star", "carol")]
    await follow(services, carol, star)
    await services.pool.execute(
        "UPDATE users SET fanout_mode = 1, pull_from = next_id() WHERE id = $1", star.id
    )
    await services.feeds.rebuild_recent(star.id)
    first = await services.posts.create(star.id, "pulled")
    await services.feeds.push_recent(star.id, first.id)
    one, two, three, four = [await reader_process() for _ in range(4)]
    try:
        assert (await one.feeds.home(alice.id, 5, None)).post_ids == []
        assert [s for s in statements if "followee_id = ANY" in s]  # found once, by one process
        statements.clear()
        assert (await two.feeds.home(alice.id, 5, None)).post_ids == []
        assert not [s for s in statements if "followee_id = ANY" in s]  # another process reuses it

        # A look-up that found alice following no pulled author, and keeps that for every process
        # only after her follow of the star committed and bumped her follows version: what it
        # keeps is stale, and must not be used.
        found, go_on = asyncio.Event(), asyncio.Event()
        store = three.feeds._store_pulled_of

        async def held(viewer: int, entry: pulled_of.Entry) -> None:
            found.set()
            await go_on.wait()
            await store(viewer, entry)

        three.feeds._store_pulled_of = held  # type: ignore[method-assign]
        await services.redis.delete(Keys(settings_.redis_prefix).pulled_of(alice.id))
        racing = asyncio.create_task(three.feeds.home(alice.id, 5, None))
        await found.wait()
        await follow(services, alice, star)
        go_on.set()
        assert (await racing).post_ids == []  # it read before the follow
        stale = pulled_of.decode(await raw(services, Keys(settings_.redis_prefix).pulled_of(alice.id)))
        assert stale is not None and stale.pulled == []
        # Whatever the racing read kept, no process may serve alice without the star now (four
        # has nothing of its own: it finds the stale entry in Redis). The follow put the star's
        # older post in her timeline; the next one is only in the star's pulled list.
        later = await services.posts.create(star.id, "pulled, after alice follows")
        await services.feeds.push_recent(star.id, later.id)
        for reader in (four, one, two, three):
            assert (await reader.feeds.home(alice.id, 5, None)).post_ids == [later.id, first.id]
        await services.relations.unfollow(alice.id, star.id)
        await services.feeds.after_follow_change(alice.id, star.id)
        for reader in (one, two, three, four):
            assert (await reader.feeds.home(alice.id, 5, None)).post_ids == []
    finally:
        for reader in (one, two, three, four):
            await reader.close()


async def test_readers_missing_a_pulled_list_together_share_one_read_and_one_failure(
    services: Services,
) -> None:
    star = await user(services, "star")
    fans = [await user(services, f"fan{i}") for i in range(12)]
    for fan in fans:
        await follow(services, fan, star)
    await services.pool.execute(
        "UPDATE users SET fanout_mode = 1, pull_from = next_id() WHERE id = $1", star.id
    )
    await services.feeds.rebuild_recent(star.id)
    for i in range(3):
        post = await services.posts.create(star.id, f"pulled {i}")
        await services.feeds.push_recent(star.id, post.id)
    truth = {f.id: (await services.feeds.pull_page(f.id, 10, None)).post_ids for f in fans}
    assert all(len(ids) == 3 for ids in truth.values())
    feeds = services.feeds
    for fan in fans:  # timelines built, so only the pulled list is missing below
        await feeds.home(fan.id, 10, None)

    asked: list[list[int]] = []
    real = feeds._read_recent
    real_lists = feeds._recent_lists
    entered = 0

    async def entering(authors: Sequence[int]) -> dict[int, ListRead]:
        nonlocal entered
        entered += 1  # it decides at once, before any await, whether to read or to wait
        return await real_lists(authors)

    async def every_reader_in() -> None:
        for _ in range(3000):
            if entered >= len(fans):
                return
            await asyncio.sleep(0.01)

    async def counted(authors: Sequence[int]) -> list[ListRead]:
        asked.append(list(authors))
        await every_reader_in()  # the read is still out when every other reader misses
        return await real(authors)

    feeds._recent_lists = entering  # type: ignore[method-assign]

    feeds._read_recent = counted  # type: ignore[method-assign]
    feeds.recent_cache = RecentCache(500)  # forget what is kept: every reader misses at once
    entered = 0
    pages = await asyncio.gather(*(feeds.home(f.id, 10, None) for f in fans))
    assert [p.post_ids for p in pages] == [truth[f.id] for f in fans]
    assert asked == [[star.id]]

    async def failing(authors: Sequence[int]) -> list[ListRead]:
        asked.append(list(authors))
        await every_reader_in()
        raise RedisConnectionError("Redis went away mid-read")

    feeds._read_recent = failing  # type: ignore[method-assign]
    feeds.recent_cache = RecentCache(500)
    entered = 0
    pages = await asyncio.gather(*(feeds.home(f.id, 10, None) for f in fans))
    # Every reader waiting on the failed read was answered from PostgreSQL: nothing lost.
    assert [p.post_ids for p in pages] == [truth[f.id] for f in fans]
    assert asked[1:] == [[star.id]] and not feeds._recent_pending


async def test_a_cold_reader_takes_the_rebuild_lock_and_reads_the_list_in_one_round_trip(
    settings_: Settings,
) -> None:
    assert settings_.database_url and settings_.redis_url
    redis = await counting_client(settings_.redis_url)
    pool = await create_pool(settings_.database_url)
    services = build_services(settings_, pool, redis, passwords=FAST_PASSWORDS)
    try:
        alice, bob = await user(services, "alice"), await user(services, "bob")
        await services.relations.follow(alice.id, bob.id)
        posts = [await services.posts.create(bob.id, f"p{i}") for i in range(3)]
        keys = Keys(settings_.redis_prefix)
        lock, timeline = keys.rebuild_lock(alice.id), keys.timeline(alice.id)
        # One round trip on a cluster too: both keys are on the node of one slot.
        assert key_slot(lock.encode()) == key_slot(timeline.encode())
        feeds = services.feeds
        touch, rebuild = feeds.touch, feeds.rebuild_timeline
        marks: list[int] = []

        async def touching(user_id: int) -> None:
            await touch(user_id)  # the cold path's last step before the lock
            marks.append(redis.round_trips)

        async def rebuilding(user_id: int) -> None:
            marks.append(redis.round_trips)
            await rebuild(user_id)

        feeds.touch = touching  # type: ignore[method-assign]
        feeds.rebuild_timeline = rebuilding  # type: ignore[method-assign]
        page = await feeds.home(alice.id, 10, None)
        assert page.post_ids == [p.id for p in reversed(posts)]
        assert len(marks) == 2 and marks[1] - marks[0] == 1

        # Built now: a reader winning the lock sees that in the same round trip and lets go.
        async def must_not_rebuild() -> None:
            raise AssertionError("rebuilt a built timeline")

        before = redis.round_trips
        assert not await feeds._single_flight(lock, timeline, must_not_rebuild)
        assert redis.round_trips - before == 2  # lock and read; release
        assert await redis.exists(lock) == 0
    finally:
        await services.close()


async def test_a_cold_reader_arriving_after_the_rebuild_does_not_rebuild_again(services: Services) -> None:
    """Two readers find no timeline; the second reaches the lock only after the first's rebuild
    released it. The lock alone would let it rebuild again: it must see the built timeline."""
    alice, bob = await user(services, "alice"), await user(services, "bob")
    await services.relations.follow(alice.id, bob.id)
    posts = [await services.posts.create(bob.id, f"p{i}") for i in range(5)]
    feeds = services.feeds
    rebuilds = 0
    rebuild, touch = feeds.rebuild_timeline, feeds.touch
    second_is_cold = asyncio.Event()  # the second reader found no timeline too
    first_answered = asyncio.Event()  # the first reader's home() returned: its lock is released
    touches = 0

    async def counting(user_id: int) -> None:
        nonlocal rebuilds
        rebuilds += 1
        await rebuild(user_id)

    async def ordered_touch(user_id: int) -> None:
        # The cold path touches the viewer just before taking the lock.
        nonlocal touches
        touches += 1
        if touches == 1:
            await asyncio.wait_for(second_is_cold.wait(), 30)
        else:
            second_is_cold.set()
            await asyncio.wait_for(first_answered.wait(), 30)
        await touch(user_id)

    async def first() -> list[int]:
        page = await feeds.home(alice.id, 10, None)
        first_answered.set()
        return page.post_ids

    async def second() -> list[int]:
        return (await feeds.home(alice.id, 10, None)).post_ids

    feeds.rebuild_timeline = counting  # type: ignore[method-assign]
    feeds.touch = ordered_touch  # type: ignore[method-assign]
    pages = await asyncio.gather(first(), second())
    assert touches == 2  # both readers took the cold path
    assert rebuilds == 1
    expected = [p.id for p in reversed(posts)]
    assert pages[0] == pages[1] == expected
