"""Reads on a streaming replica whose replay is paused: nothing missing, nothing stale.

A real standby (pg_basebackup of an embedded primary) replays the primary's WAL; pausing
its replay (`pg_wal_replay_pause()`) freezes it in the past, the worst lag there is. Its
lag limit is set far above the test's length, so only the correctness rules decide where
a read goes: the writer's own LSN, the shared mark of hiding writes, and the check that the
replica has every post a list names. Every page is compared with the primary's answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import asyncpg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from homefeed.feed.config import Settings
from homefeed.feed.errors import Forbidden
from homefeed.feed.metrics import REPLICA_READS, REPLICA_SKIPS
from homefeed.feed.redis_client import open_redis
from homefeed.feed.replicas import Replicas
from homefeed.feed.services import Services, build_services
from homefeed.feed.store.pool import create_pool
from homefeed.migrations.runner import migrate
from homefeed.workers.fanout_worker import FanoutWorker
from tests.conftest import FAST_PASSWORDS, with_search_path
from tests.standby import Pair, primary_with_standby

HOUR_MS = 3_600_000
_handles = itertools.count()


@pytest.fixture(scope="session")
def pair() -> Iterator[Pair]:
    with primary_with_standby() as started:
        yield started


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
        """The primary's answer: the PostgreSQL pull query."""
        return (await self.services.feeds.pull_page(viewer, 100, None)).post_ids


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


def count(reason: str | None = None) -> float:
    """A replica counter's current value (reads served, or skips for a reason)."""
    if reason is None:
        return float(REPLICA_READS._value.get())
    return float(REPLICA_SKIPS.labels(reason)._value.get())


async def test_a_caught_up_replica_answers_and_agrees_with_the_primary(world: World) -> None:
    author, reader = await world.user(), await world.user()
    await world.services.relations.follow(reader, author)
    posts = [await world.post(author, f"p{i}") for i in range(3)]
    await world.settle()
    async with world.paused():
        served = count()
        assert await world.feed(reader) == posts[::-1] == await world.reference(reader)
        assert count() > served  # the replica answered


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


async def test_a_replica_that_is_down_is_skipped(world: World, pair: Pair) -> None:
    author = await world.user()
    post = await world.post(author)
    await world.caught_up()
    # A replica whose server does not exist (a socket directory with no server in it).
    gone = await create_pool("postgresql://postgres@/postgres?host=/nonexistent", min_size=0)
    prefix = world.services.settings.redis_prefix
    down = Replicas(world.services.pool, world.services.redis, prefix, [gone], max_lag_ms=HOUR_MS)
    await down.probe()
    skipped = count("down")
    assert await down.choose(author) is None
    assert count("down") == skipped + 1
    assert await world.feed(author) == [post]
    await down.close()


# ---- the invariant, with replay paused from start to end -------------------------------------

USERS = 4
actions = st.one_of(
    st.tuples(st.just("post"), st.integers(0, USERS - 1)),
    st.tuples(st.just("delete"), st.integers(0, 50)),
    st.tuples(st.sampled_from(["follow", "unfollow", "block", "unblock", "mute", "unmute"]),
              st.tuples(st.integers(0, USERS - 1), st.integers(0, USERS - 1))),
    st.tuples(st.just("settle"), st.none()),
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
            else:
                assert isinstance(arg, tuple)
                a, b = arg
                if a == b:
                    continue
                with contextlib.suppress(Forbidden):  # a follow across a block
                    await getattr(world.services.relations, verb)(users[a], users[b])
            for viewer in users:
                # Fan-out may not have run: a page may lack what the primary has, never more.
                shown, truth = await world.feed(viewer, first=3), await world.reference(viewer)
                assert set(shown) <= set(truth), ("stale", verb, arg)
                if verb == "settle":
                    assert shown == truth, ("missing", verb, arg)
        await world.settle()
        for viewer in users:
            assert await world.feed(viewer, first=3) == await world.reference(viewer)
