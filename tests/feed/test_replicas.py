"""Reads on a streaming replica whose replay is paused: nothing missing, nothing stale.

A real standby (pg_basebackup of an embedded primary) replays the primary's WAL; pausing
its replay (`pg_wal_replay_pause()`) freezes it in the past, the worst lag there is. Its
lag limit is set far above the test's length, so only the correctness rules decide where
a read goes: the writer's own LSN, the shared mark of hiding writes, the check that the
replica has every post a list names, the followed authors' marks for the pull query, and
the primary's position for a rebuild. Every page is compared with the primary's answer.
Timelines hold TIMELINE ids, so pages past the first few are history from the pull query.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import asyncpg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis

from homefeed.feed import replicas as replicas_module
from homefeed.feed.config import Settings
from homefeed.feed.errors import Forbidden
from homefeed.feed.metrics import REPLICA_READS, REPLICA_SKIPS
from homefeed.feed.redis_client import open_redis
from homefeed.feed.replicas import Replicas
from homefeed.feed.services import Services, build_services
from homefeed.feed.store.pool import create_pool
from homefeed.feed.store.posts import AuthorPage
from homefeed.feed.store.pull import pull_ids
from homefeed.migrations.runner import migrate
from homefeed.workers.fanout_worker import FanoutWorker
from tests.conftest import FAST_PASSWORDS, with_search_path
from tests.standby import Pair

HOUR_MS = 3_600_000
TIMELINE = 5
_handles = itertools.count()


@dataclass
class World:
    services: Services
    replicas: Replicas
    standby: asyncpg.Connection  # to pause and resume replay

    async def caught_up(self) -> None:
        """Wait until the standby has replayed everything the primary has written so far."""
        target = await self.services.pool.fetchval("SELECT pg_current_wal_lsn()")
        for _ in range(600):
            if await self.standby.fetchval("SELECT pg_last_wal_replay_lsn() >= $1", target):
                await self.replicas.probe()
                return
            await asyncio.sleep(0.05)
        raise AssertionError("the standby did not catch up")

    @asynccontextmanager
    async def paused(self) -> AsyncIterator[None]:
        """Replay paused on the standby (after catching up), resumed on exit."""
        await self.caught_up()
        await self.standby.execute("SELECT pg_wal_replay_pause()")
        for _ in range(600):
            if await self.standby.fetchval("SELECT pg_get_wal_replay_pause_state() = 'paused'"):
                break
            await asyncio.sleep(0.05)
        await self.replicas.probe()
        try:
            yield
        finally:
            await self.standby.execute("SELECT pg_wal_replay_resume()")

    async def user(self) -> int:
        """A new user with a timeline (its first read builds it): reads then take the hybrid path."""
        user_id = (await self.services.users.create(f"r{next(_handles)}", "R", "x")).id
        await self.services.feeds.home(user_id, 1, None)
        return user_id

    async def post(self, author: int, text: str = "hello") -> int:
        post = await self.services.posts.create(author, text)
        await self.services.feeds.own_post(author, post.id)
        return post.id

    async def settle(self) -> None:
        await FanoutWorker(self.services).drain()

    async def feed(self, viewer: int, first: int = 20) -> list[int]:
        """The whole home feed, page by page (hybrid path: replica reads where allowed)."""
        got: list[int] = []
        before = None
        for _ in range(50):
            page = await self.services.feeds.home(viewer, first, before)
            got += page.post_ids
            if not page.has_next or not page.post_ids:
                return got
            before = page.post_ids[-1]
        raise AssertionError("paging never ended")

    async def reference(self, viewer: int) -> list[int]:
        """The primary's answer: the PostgreSQL pull query, on the primary."""
        return await pull_ids(self.services.pool, viewer, None, 100)

    async def flush(self) -> None:
        """Redis loses everything of this service: timelines, and the replicas' read marks."""
        redis = self.services.redis
        keys = [k async for k in redis.scan_iter(match=f"{self.services.settings.redis_prefix}:*")]
        for key in keys:  # one by one: on a cluster they live in different slots
            await redis.delete(key)
        self.services.feeds._fresh_until.clear()


@pytest.fixture
async def world(pair: Pair, servers: Settings) -> AsyncIterator[World]:
    schema = f"r_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(pair.primary_url)
    await admin.execute(f"CREATE SCHEMA {schema}")
    await admin.close()
    assert servers.redis_url
    settings_ = servers.with_(
        database_url=with_search_path(pair.primary_url, schema),
        redis_prefix=schema,
        jwt_secret="test-secret-" + "x" * 20,
        celebrity_cache_ms=0,
        inprocess_worker=False,
        timeline_size=TIMELINE,
    )
    assert settings_.database_url
    pool = await create_pool(settings_.database_url)
    await migrate(pool)
    redis = await open_redis(servers.redis_url)
    replica_pool = await create_pool(with_search_path(pair.standby_url, schema))
    replicas = Replicas(pool, redis, schema, [replica_pool], max_lag_ms=HOUR_MS)
    services = build_services(settings_, pool, redis, passwords=FAST_PASSWORDS, replicas=replicas)
    standby = await asyncpg.connect(pair.standby_url)
    try:
        yield World(services, replicas, standby)
    finally:
        await standby.execute("SELECT pg_wal_replay_resume()")
        await standby.close()
        await services.close()
        admin = await asyncpg.connect(pair.primary_url)
        await admin.execute(f"DROP SCHEMA {schema} CASCADE")
        await admin.close()
        cleanup = await open_redis(servers.redis_url)
        keys = [k async for k in cleanup.scan_iter(match=f"{schema}:*")]
        if keys:
            await cleanup.delete(*keys)
        await cleanup.aclose()


def count(reason: str) -> float:
    """A replica skip counter's current value."""
    return float(REPLICA_SKIPS.labels(reason)._value.get())


def served(read: str = "visible") -> float:
    """How many reads of a kind replicas have answered."""
    return float(REPLICA_READS.labels(read)._value.get())


async def test_a_caught_up_replica_answers_and_agrees_with_the_primary(world: World) -> None:
    author, reader = await world.user(), await world.user()
    await world.services.relations.follow(reader, author)
    posts = [await world.post(author, f"p{i}") for i in range(3)]
    await world.settle()
    async with world.paused():
        before = served()
        assert await world.feed(reader) == posts[::-1] == await world.reference(reader)
        assert served() > before  # the replica answered


async def test_the_author_sees_their_own_post_and_the_follower_gets_it_from_the_primary(world: World) -> None:
    author, reader = await world.user(), await world.user()
    await world.services.relations.follow(reader, author)
    old = await world.post(author, "old")
    await world.settle()
    async with world.paused():
        unreplayed, missing = count("unreplayed"), count("missing")
        new = await world.post(author, "new")  # the standby will not see it while paused
        assert await world.feed(author) == [new, old]
        assert count("unreplayed") > unreplayed  # the author's own LSN kept them on the primary
        await world.settle()
        # The reader wrote nothing: the replica is asked, lacks `new`, and the primary answers.
        assert await world.feed(reader) == [new, old] == await world.reference(reader)
        assert count("missing") > missing


async def test_a_follow_shows_on_the_followers_next_read(world: World) -> None:
    author, reader = await world.user(), await world.user()
    posts = [await world.post(author, f"p{i}") for i in range(2)]
    await world.settle()
    async with world.paused():
        await world.services.relations.follow(reader, author)
        await world.settle()
        assert await world.feed(reader) == posts[::-1] == await world.reference(reader)


@pytest.mark.parametrize("hide", ["delete", "block"])
async def test_a_hidden_post_never_shows_from_a_replica_that_has_it(world: World, hide: str) -> None:
    author, reader, bystander = await world.user(), await world.user(), await world.user()
    await world.services.relations.follow(reader, author)
    await world.services.relations.follow(bystander, author)
    kept, doomed = await world.post(author, "kept"), await world.post(author, "doomed")
    await world.settle()
    async with world.paused():
        if hide == "delete":
            await world.services.posts.delete(author, doomed)
        else:
            await world.services.relations.block(author, reader)
        # Before any clean-up job runs, the timelines still name the post; the replica still
        # has it live. The shared mark sends everyone to the primary until it has replayed it.
        want = [kept] if hide == "delete" else []
        assert await world.feed(reader) == want == await world.reference(reader)
        assert await world.feed(bystander) == ([kept] if hide == "delete" else [doomed, kept])


async def test_a_replica_that_is_down_is_skipped_and_every_read_still_answers(world: World) -> None:
    author, reader = await world.user(), await world.user()
    await world.services.relations.follow(reader, author)
    posts = [await world.post(author, f"p{i}") for i in range(TIMELINE + 3)]
    await world.settle()
    await world.caught_up()
    # A replica whose server does not exist (a socket directory with no server in it).
    gone = await create_pool("postgresql://postgres@/postgres?host=/nonexistent", min_size=0)
    prefix = world.services.settings.redis_prefix
    down = Replicas(world.services.pool, world.services.redis, prefix, [gone], max_lag_ms=HOUR_MS)
    await down.probe()
    feeds = world.services.feeds
    kept, feeds.replicas = feeds.replicas, down
    try:
        skipped = count("down")
        assert await down.choose(author) is None
        assert count("down") == skipped + 1
        # First pages (visibility read), history (pull), a cold rebuild and the pull fallback.
        assert await world.feed(reader, first=2) == posts[::-1] == await world.reference(reader)
        await world.flush()
        assert await world.feed(reader, first=2) == posts[::-1]
        feeds.breaker.open_until = float("inf")
        assert await world.feed(reader, first=2) == posts[::-1]
        assert count("down") > skipped + 3
    finally:
        feeds.replicas = kept
        feeds.breaker.success()
        await down.close()


async def test_with_no_replica_configured_every_read_goes_to_the_primary_and_nothing_is_counted(
    world: World,
) -> None:
    author = await world.user()
    post = await world.post(author)
    prefix = world.services.settings.redis_prefix
    none = Replicas(world.services.pool, world.services.redis, prefix, [], max_lag_ms=HOUR_MS)
    reasons = ("down", "behind", "unreplayed", "marks_unavailable", "wide")
    skipped = [count(r) for r in reasons]
    try:
        assert await none.choose(author) is None
        assert await none.visible_rows(author, [post], 10) is None
        assert await none.pull_ids(author, None, 10) is None
        assert await none.timeline_ids(author, await none.primary_lsn(), 10) is None
        assert await none.users([author]) is None
        assert await none.run("posts", author, [author], lambda pool: pool.fetchval("SELECT 1")) is None
        assert [count(r) for r in reasons] == skipped  # no replica is not a skip
        assert none._prober is None  # nothing to probe
    finally:
        await none.close()


async def test_history_past_the_timeline_misses_no_post_the_replica_lacks(world: World) -> None:
    author, quiet, reader = await world.user(), await world.user(), await world.user()
    await world.services.relations.follow(reader, author)
    await world.services.relations.follow(reader, quiet)
    old = [await world.post(quiet, f"q{i}") for i in range(TIMELINE + 2)]
    await world.settle()
    async with world.paused():
        # Nobody the reader follows wrote since the pause: history comes from the replica.
        pulled = served("pull")
        assert await world.feed(reader, first=2) == old[::-1] == await world.reference(reader)
        assert served("pull") > pulled
        # A followed author posts (unreplayed): history must come from the primary.
        unreplayed = count("unreplayed")
        new = await world.post(author, "new")
        await world.settle()
        assert await world.feed(reader, first=2) == [new, *old[::-1]] == await world.reference(reader)
        assert count("unreplayed") > unreplayed


async def test_the_pull_fallback_on_a_paused_replica_misses_nothing_and_shows_nothing_hidden(
    world: World,
) -> None:
    author, quiet, reader = await world.user(), await world.user(), await world.user()
    for followee in (author, quiet):
        await world.services.relations.follow(reader, followee)
    doomed = await world.post(quiet, "doomed")
    kept = [await world.post(quiet, f"q{i}") for i in range(3)]
    await world.settle()
    feeds = world.services.feeds
    feeds.breaker.open_until = float("inf")  # Redis "down": every read is the pull fallback
    try:
        async with world.paused():
            pulled = served("pull")
            assert await world.feed(reader) == [*kept[::-1], doomed]
            assert served("pull") > pulled
            new = await world.post(author, "new")
            await world.services.posts.delete(quiet, doomed)
            own = await world.post(reader, "own")
            # The author and the reader see their own posts; nobody sees the deleted one.
            assert (await world.feed(author))[0] == new
            assert await world.feed(reader) == [own, new, *kept[::-1]] == await world.reference(reader)
    finally:
        feeds.breaker.success()


async def test_with_redis_down_a_replica_answers_the_pull_query_only_as_current_as_the_primary(
    world: World, pair: Pair, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(replicas_module, "MARKS_RETRY", 3600.0)  # Redis stays "down" for the test
    author = await world.user()
    post = await world.post(author)
    await world.caught_up()
    dead = Redis.from_url("redis://127.0.0.1:1/0")  # nothing listens on port 1
    replica_pool = await create_pool(
        with_search_path(pair.standby_url, world.services.settings.redis_prefix), min_size=0
    )
    blind = Replicas(world.services.pool, dead, "x", [replica_pool], max_lag_ms=HOUR_MS)
    await blind.probe()
    try:
        unavailable = count("marks_unavailable")
        # No marks: the viewer's own writes cannot be checked; the first read finds out.
        assert await blind.pull_ids(author, None, 10) is None
        assert await blind.visible_rows(author, [post], 10) is None
        assert count("marks_unavailable") == unavailable + 2
        # From then on the pull query waits for the replica to replay the primary's position.
        wait = replicas_module.REBUILD_WAIT
        monkeypatch.setattr(replicas_module, "REBUILD_WAIT", 600.0)  # replay runs: it gets there
        pulled = served("pull")
        assert await blind.pull_ids(author, None, 10) == [post]
        assert served("pull") == pulled + 1
        monkeypatch.setattr(replicas_module, "REBUILD_WAIT", wait)
        async with world.paused():
            own = await world.post(author, "own")  # its mark went to a Redis `blind` cannot read
            unreplayed = count("unreplayed")
            assert await blind.pull_ids(author, None, 10) is None  # the primary answers
            assert count("unreplayed") == unreplayed + 1
            assert (await world.services.feeds.pull_page(author, 10, None)).post_ids == [own, post]
    finally:
        await blind.close()
        await dead.aclose()


async def test_a_flush_loses_the_marks_and_no_replica_is_trusted_until_it_replays_past_it(
    world: World,
) -> None:
    author, reader = await world.user(), await world.user()
    await world.services.relations.follow(reader, author)
    doomed = await world.post(author, "doomed")
    await world.settle()
    async with world.paused():
        new = await world.post(author, "new")
        await world.services.posts.delete(author, doomed)
        await world.settle()
        # Redis loses the timelines and every mark (the author's, the deletion's): the replica
        # has neither the new post nor the deletion, and nothing in Redis says so any more.
        await world.flush()
        rebuilt = served("rebuild")
        assert await world.feed(reader) == [new] == await world.reference(reader)  # cold: rebuilt
        assert served("rebuild") == rebuilt  # not from the paused replica
        assert await world.feed(reader) == [new]  # from the rebuilt timeline
        assert await world.feed(author) == [new]
    await world.caught_up()
    # Once the replica has replayed past the floor the flush left, it answers again.
    before = served()
    assert await world.feed(reader) == [new]
    assert served() > before


async def test_a_rebuild_uses_a_replica_only_once_it_has_the_primarys_position(world: World) -> None:
    author, reader = await world.user(), await world.user()
    await world.services.relations.follow(reader, author)
    posts = [await world.post(author, f"p{i}") for i in range(3)]
    await world.settle()
    await world.caught_up()
    replicas = world.replicas
    since = await replicas.primary_lsn()
    await world.caught_up()
    rebuilt = served("rebuild")
    assert await replicas.timeline_ids(reader, since, 10) == posts[::-1]
    assert served("rebuild") == rebuilt + 1
    async with world.paused():
        await world.post(author, "new")
        unreplayed = count("unreplayed")
        assert await replicas.timeline_ids(reader, await replicas.primary_lsn(), 10) is None
        assert count("unreplayed") == unreplayed + 1


async def test_posts_by_id_and_author_pages_from_a_paused_replica_are_never_stale_or_short(
    world: World,
) -> None:
    author, reader, blocker = await world.user(), await world.user(), await world.user()
    old = await world.post(author, "old")
    theirs = await world.post(blocker, "theirs")
    await world.settle()
    posts = world.services.posts
    page = AuthorPage(author, None, 10)
    async with world.paused():
        read = served("posts")
        assert await posts.by_ids([old, theirs], viewer=reader, lag_ok=True) == await posts.by_ids(
            [old, theirs], viewer=reader
        )
        assert served("posts") == read + 1
        # A post the replica lacks is read from the primary, never dropped.
        new = await world.post(author, "new")
        assert [p and p.id for p in await posts.by_ids([new, old], lag_ok=True)] == [new, old]
        # An author page: the author's mark (unreplayed) sends it to the primary.
        assert [p.id for p in (await posts.by_authors([page], viewer=reader, lag_ok=True))[0]] == [new, old]
        # A block and a delete hide posts at once, although the replica still shows them.
        await world.services.relations.block(blocker, reader)
        await world.services.posts.delete(author, old)
        assert await posts.by_ids([old, theirs], viewer=reader, lag_ok=True) == [None, None]
        assert await posts.by_authors([AuthorPage(blocker, None, 10)], viewer=reader, lag_ok=True) == [[]]


async def test_authors_not_yet_on_the_replica_are_read_from_the_primary(world: World) -> None:
    await world.caught_up()
    async with world.paused():
        newcomer = await world.services.users.create(f"n{next(_handles)}", "Newcomer", "x")
        authors = world.services.feeds.authors
        read = served("authors")
        assert (await authors.load([newcomer.id]))[newcomer.id].handle == newcomer.handle
        assert served("authors") == read + 1  # asked the replica, which lacked them


async def test_viewer_flags_and_counts_from_a_paused_replica_show_the_viewers_own_writes(
    world: World,
) -> None:
    author, reader, bystander = await world.user(), await world.user(), await world.user()
    post = await world.post(author)
    await world.settle()
    relations, likes, users = world.services.relations, world.services.likes, world.services.users
    async with world.paused():
        # Nobody wrote since the pause: the replica answers, as the primary would.
        read = [served("follows"), served("likes"), served("users")]
        assert await relations.follows_among(reader, [author], lag_ok=True) == set()
        assert await likes.liked_among(reader, [post], lag_ok=True) == set()
        [before] = await users.by_ids([author], viewer=reader, lag_ok=True)
        assert before is not None and before.follower_count is not None
        assert [served("follows"), served("likes"), served("users")] == [n + 1 for n in read]
        # The reader follows and likes (not replayed): their next reads show both, and the count.
        await relations.follow(reader, author)
        await likes.like(reader, post)
        assert await relations.follows_among(reader, [author], lag_ok=True) == {author}
        assert await likes.liked_among(reader, [post], lag_ok=True) == {post}
        [after] = await users.by_ids([author], viewer=reader, lag_ok=True)
        assert after is not None and after.follower_count == before.follower_count + 1
        # Someone who wrote nothing reads the replica: another's follow shows in a count within
        # the replica's lag (the tolerance these reads accept); the flags are their own.
        read_users = served("users")
        [seen] = await users.by_ids([author], viewer=bystander, lag_ok=True)
        assert seen is not None and seen.follower_count == before.follower_count
        assert served("users") == read_users + 1
        # A user signed up since the pause is read from the primary, never missing.
        newcomer = await users.create(f"n{next(_handles)}", "Newcomer", "x")
        found = await users.by_ids([newcomer.id, author], viewer=bystander, lag_ok=True)
        assert [u and u.id for u in found] == [newcomer.id, author]
        # A block from the other side ends the follow: a hiding write, so the replica (which
        # still has the follow) answers nobody.
        await relations.block(author, reader)
        assert await relations.follows_among(reader, [author], lag_ok=True) == set()
        assert await relations.follows_among(reader, [author]) == set()


async def test_a_follow_of_a_pulled_author_shows_at_once_although_the_replica_lacks_it(world: World) -> None:
    star, reader, other = await world.user(), await world.user(), await world.user()
    await world.services.pool.execute(
        "UPDATE users SET fanout_mode = 1, pull_from = next_id() WHERE id = $1", star
    )
    feeds = world.services.feeds
    # The list of pulled authors kept, but reread on every read: the viewer's look-up is then
    # the form that reads only their follows (_VIEWER_AMONG), the one a replica may answer.
    feeds.pulled_authors.ttl = 1e-6
    posts = [await world.post(star, f"s{i}") for i in range(2)]
    await world.services.relations.follow(other, star)
    await feeds.follows_changed(other)
    async with world.paused():
        looked_up = served("viewer")
        assert await world.feed(other) == posts[::-1] == await world.reference(other)
        assert served("viewer") == looked_up + 1  # the replica told whom `other` pulls
        # The reader follows the star (not replayed). No backfill runs (no worker): the posts
        # can only come from the star's pulled list, which the read merges only if it knows.
        await world.services.relations.follow(reader, star)
        await feeds.follows_changed(reader)
        assert await world.feed(reader) == posts[::-1] == await world.reference(reader)
        assert served("viewer") == looked_up + 1  # the primary answered


# ---- the invariant, with replay paused from start to end -------------------------------------

USERS = 4
actions = st.one_of(
    st.tuples(st.just("post"), st.integers(0, USERS - 1)),
    st.tuples(st.just("delete"), st.integers(0, 50)),
    st.tuples(st.sampled_from(["follow", "unfollow", "block", "unblock", "mute", "unmute"]),
              st.tuples(st.integers(0, USERS - 1), st.integers(0, USERS - 1))),
    st.tuples(st.just("settle"), st.none()),
    st.tuples(st.just("flush"), st.none()),
    st.tuples(st.just("redis_down"), st.booleans()),
)  # fmt: skip


@settings(max_examples=12)
@given(history=st.lists(actions, max_size=25))
async def test_pages_from_a_paused_replica_equal_the_primarys(
    world: World, history: list[tuple[str, object]]
) -> None:
    users = [await world.user() for _ in range(USERS)]
    for a, b in itertools.permutations(users, 2):
        await world.services.relations.follow(a, b)
    seed = [await world.post(u, "seed") for u in users]
    await world.settle()
    async with world.paused():
        posts: list[tuple[int, int]] = [(users.index(u), p) for u, p in zip(users, seed, strict=True)]
        for verb, arg in history:
            if verb == "post":
                assert isinstance(arg, int)
                posts.append((arg, await world.post(users[arg])))
            elif verb == "delete":
                assert isinstance(arg, int)
                author, post = posts[arg % len(posts)]
                await world.services.posts.delete(users[author], post)
            elif verb == "settle":
                await world.settle()
            elif verb == "flush":
                await world.flush()
            elif verb == "redis_down":
                # The feed's breaker open: every read is the pull fallback (marks still readable).
                world.services.feeds.breaker.open_until = float("inf") if arg else 0.0
            else:
                assert isinstance(arg, tuple)
                a, b = arg
                if a == b:
                    continue
                with contextlib.suppress(Forbidden):  # a follow across a block
                    await getattr(world.services.relations, verb)(users[a], users[b])
            for viewer in users:
                # Fan-out may not have run: a page may lack what the primary has, never more.
                # Pages hold 3 posts and timelines TIMELINE ids: most of a feed is history.
                shown, truth = await world.feed(viewer, first=3), await world.reference(viewer)
                assert set(shown) <= set(truth), ("stale", verb, arg)
                # Settled, just rebuilt, or read by the pull fallback: nothing may be missing.
                if verb in ("settle", "flush") or world.services.feeds.breaker.is_open:
                    assert shown == truth, ("missing", verb, arg)
                own = [p for a, p in posts if users[a] == viewer]
                assert set(own) & set(truth) <= set(shown), ("own post", verb, arg)
        await world.settle()
        for viewer in users:
            assert await world.feed(viewer, first=3) == await world.reference(viewer)
        world.services.feeds.breaker.success()
