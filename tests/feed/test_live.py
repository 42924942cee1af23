from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY
from redis.asyncio import Redis

from homefeed.feed.errors import FeedError
from homefeed.feed.idset import IdSet
from homefeed.feed.live import (
    MAX_ID,
    QUEUE_SIZE,
    RECENT_ADDED,
    RESYNC,
    HubClosed,
    Kind,
    LiveEvent,
    LiveHub,
    Notice,
    Relations,
    Subscriber,
    _Index,
)
from homefeed.feed.pubsub import ClassicSubscription, subscriber_counts
from homefeed.feed.services import Services
from tests.feed.cancel_on_write import cancelled_on_write


def added(i: int) -> LiveEvent:
    return LiveEvent(Kind.ADDED, i, 1)


async def test_a_subscriber_that_falls_behind_gets_one_resync_and_no_backlog() -> None:
    sub = Subscriber(viewer=7)
    for i in range(QUEUE_SIZE * 10):
        sub.offer(added(i))
    assert sub.queue.qsize() == 1  # memory stays bounded whatever the client does
    assert await sub.next() is RESYNC
    # Once it has taken the RESYNC it receives updates again.
    sub.offer(added(99))
    assert (await sub.next()).post_id == 99


async def test_a_subscriber_within_its_queue_gets_every_update_in_order() -> None:
    sub = Subscriber(viewer=7)
    for i in range(QUEUE_SIZE):
        sub.offer(added(i))
    assert [(await sub.next()).post_id for _ in range(QUEUE_SIZE)] == list(range(QUEUE_SIZE))


async def test_a_post_announced_twice_is_added_once() -> None:
    # The author's own post is announced when created and again after fan-out; a redone job
    # announces its posts again. Other updates in between do not make the second one pass.
    sub = Subscriber(viewer=7)
    sub.offer(added(1))
    for i in range(2, RECENT_ADDED):
        sub.offer(added(i))
    sub.offer(LiveEvent(Kind.REMOVED, 5, 1))
    sub.offer(added(1))
    kinds = [(e.kind, e.post_id) for e in [await sub.next() for _ in range(sub.queue.qsize())]]
    assert kinds == [(Kind.ADDED, i) for i in range(1, RECENT_ADDED)] + [(Kind.REMOVED, 5)]


def test_visibility_follows_relationships() -> None:
    sub = Subscriber(viewer=1, followees=IdSet.of({2, 3}), hidden=frozenset({3}))
    assert sub.sees(1) and sub.sees(2)
    assert not sub.sees(3)  # followed but muted or blocked
    assert not sub.sees(4)  # not followed


def test_notices_round_trip() -> None:
    notice = Notice("add", 42, lo=10, hi=20, to_self=True)
    assert Notice.decode(notice.encode()) == notice


async def _listened(services: Services, channels: list[str], expected: set[str]) -> set[str]:
    """Which of channels have a subscriber, once that is expected or after about two seconds.

    The hub's SUBSCRIBE and UNSUBSCRIBE go out on its own connection without waiting for
    Redis to answer, so a PUBSUB NUMSUB on another connection may overtake them.
    """
    for _ in range(100):
        counts = await subscriber_counts(services.redis, channels)
        seen = {name for name, n in zip(channels, counts, strict=True) if n}
        if seen == expected:
            break
        await asyncio.sleep(0.02)
    return seen


async def test_the_hub_listens_on_exactly_the_channels_its_viewers_need(services: Services) -> None:
    # Subscribing syncs only the channels that changed: shared ones stay while anyone needs them.
    a, b, c, d = [await services.users.create(h, h, "x") for h in ("a", "b", "c", "d")]
    await services.relations.follow(a.id, c.id)
    await services.relations.follow(b.id, c.id)
    await services.relations.follow(b.id, d.id)
    hub, ch = services.live, services.live.channels
    every = [ch.author(u.id) for u in (a, b, c, d)] + [ch.user(u.id) for u in (a, b, c, d)]
    async with hub.subscribe(a.id):
        async with hub.subscribe(b.id):
            wanted = {ch.author(x) for x in (a.id, b.id, c.id, d.id)} | {ch.user(a.id), ch.user(b.id)}
            assert await _listened(services, every, wanted) == wanted
            assert hub.channel_count == len(wanted)
        # b left: c is still needed by a; d and b's own channels are not.
        wanted = {ch.author(a.id), ch.author(c.id), ch.user(a.id)}
        assert await _listened(services, every, wanted) == wanted
        # a unfollows c: the hub hears it on a's channel and drops c.
        await services.relations.unfollow(a.id, c.id)
        await services.notices.relation_changed(a.id, c.id, "unfollow")  # as the mutation does
        for _ in range(100):
            if hub.channel_count == 2:
                break
            await asyncio.sleep(0.02)
        wanted = {ch.author(a.id), ch.user(a.id)}
        assert await _listened(services, every, wanted) == wanted
    assert hub.channel_count == 0
    assert await _listened(services, every, set()) == set()


async def test_a_notice_reaches_exactly_the_subscribers_it_names(services: Services) -> None:
    # The author's own feed only (createPost's notice) is matched against the author's own
    # subscriptions; a follower range against the followers in it, and the author only with to_self.
    author, inside, outside = [
        await services.users.create(h, h, "x") for h in ("author", "inside", "outside")
    ]
    for fan in (inside, outside):
        await services.relations.follow(fan.id, author.id)
    hub = services.live
    async with hub.subscribe(author.id) as own, hub.subscribe(inside.id) as a, hub.subscribe(outside.id) as b:
        first = await services.posts.create(author.id, "to the author's own feed")
        await services.notices.post_reached(author.id, first.id, -1, -1, True)
        assert await until(lambda: not own.queue.empty())
        second = await services.posts.create(author.id, "to one follower")
        await services.notices.post_reached(author.id, second.id, inside.id - 1, inside.id, False)
        assert await until(lambda: not a.queue.empty())
        await asyncio.sleep(0.2)  # anything misdirected arrives meanwhile
        assert [e.post_id for e in queued(own)] == [first.id]
        assert [e.post_id for e in queued(a)] == [second.id]
        assert queued(b) == []


# ---- relationships: notices, lost notices, and the periodic re-read -------------------------


def queued(sub: Subscriber) -> list[LiveEvent]:
    """Everything waiting in a subscriber's queue, taken out."""
    events = []
    while not sub.queue.empty():
        events.append(sub.queue.get_nowait())
    if RESYNC in events:
        sub.overflowed = sub.resync_queued = False  # as next() does when the client takes it
    return events


async def until(check: Callable[[], bool], seconds: float = 3.0) -> bool:
    """Whether check() comes true within seconds."""
    deadline = asyncio.get_running_loop().time() + seconds
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


@contextlib.asynccontextmanager
async def hub_for(services: Services, refresh_seconds: float) -> AsyncIterator[LiveHub]:
    """A second hub over the test's servers, re-reading relationships every refresh_seconds."""
    hub = LiveHub(
        services.redis,
        services.pool,
        services.posts,
        services.settings.redis_prefix,
        refresh_seconds=refresh_seconds,
    )
    try:
        yield hub
    finally:
        await hub.close()


async def test_a_lost_relationship_notice_heals_within_the_refresh_interval(services: Services) -> None:
    # No notice is published for any change below, as when Redis drops one: only the hub's
    # periodic re-read can notice them.
    viewer, bob = [await services.users.create(h, h, "x") for h in ("viewer", "bob")]
    await services.relations.follow(viewer.id, bob.id)
    older = [(await services.posts.create(bob.id, f"bob {i}")).id for i in range(3)]
    async with hub_for(services, refresh_seconds=0.3) as hub, hub.subscribe(viewer.id) as sub:
        await services.relations.unfollow(viewer.id, bob.id)
        assert await until(lambda: not sub.queue.empty())
        await asyncio.sleep(0.1)  # the rest of the batch
        removed = queued(sub)
        assert {(e.kind, e.post_id) for e in removed} == {(Kind.REMOVED, p) for p in older}
        assert bob.id not in sub.followees and hub.channel_count == 2  # viewer's own two

        await services.relations.follow(viewer.id, bob.id)  # a re-follow brings the posts back
        assert await until(lambda: not sub.queue.empty())
        assert queued(sub) == [RESYNC]
        # And the hub listens to bob again: his next post reaches the viewer live.
        assert await until(lambda: hub.channel_count == 3)
        assert await _listened(services, [hub.channels.author(bob.id)], {hub.channels.author(bob.id)})
        post = await services.posts.create(bob.id, "after the re-follow")
        await services.notices.post_reached(bob.id, post.id, -1, MAX_ID, False)
        assert await until(lambda: not sub.queue.empty())
        assert [(e.kind, e.post_id) for e in queued(sub)] == [(Kind.ADDED, post.id)]

        await services.relations.mute(viewer.id, bob.id)
        assert await until(lambda: not sub.queue.empty())
        await asyncio.sleep(0.1)
        assert {e.kind for e in queued(sub)} == {Kind.REMOVED}
        await services.relations.unmute(viewer.id, bob.id)
        assert await until(lambda: not sub.queue.empty())
        assert queued(sub) == [RESYNC]
        await asyncio.sleep(0.7)  # two more rounds with nothing changed: nothing sent
        assert queued(sub) == []


@pytest.mark.parametrize("verb", ["follow", "unmute"])
async def test_a_relationship_notice_that_reveals_an_author_sends_resync(
    services: Services, verb: str
) -> None:
    viewer, bob = [await services.users.create(h, h, "x") for h in ("viewer", "bob")]
    await services.posts.create(bob.id, "before")
    if verb == "unmute":
        await services.relations.follow(viewer.id, bob.id)
        await services.relations.mute(viewer.id, bob.id)
    async with hub_for(services, refresh_seconds=3600) as hub, hub.subscribe(viewer.id) as sub:
        await asyncio.sleep(0.1)  # the hub's SUBSCRIBE reaches Redis before the notice
        await getattr(services.relations, verb)(viewer.id, bob.id)
        await services.notices.relation_changed(viewer.id, bob.id, verb)
        assert await until(lambda: not sub.queue.empty())
        assert queued(sub) == [RESYNC]
        assert sub.sees(bob.id)


async def test_a_stale_re_read_never_overwrites_a_newer_one(services: Services) -> None:
    # A periodic re-read that reads before a notice's re-read but finishes after it must not put
    # back what the notice took away (nor send a RESYNC for it).
    viewer, bob = [await services.users.create(h, h, "x") for h in ("viewer", "bob")]
    await services.relations.follow(viewer.id, bob.id)
    await services.posts.create(bob.id, "bob")
    async with hub_for(services, refresh_seconds=3600) as hub, hub.subscribe(viewer.id) as sub:
        await asyncio.sleep(0.1)
        read = hub.relations
        release = asyncio.Event()
        calls = 0

        async def slow_first(viewers: Sequence[int]) -> dict[int, Relations]:
            nonlocal calls
            calls += 1
            state = await read(viewers)
            if calls == 1:
                await release.wait()
            return state

        hub.relations = slow_first  # type: ignore[method-assign]
        refreshing = asyncio.create_task(hub.refresh())
        assert await until(lambda: calls == 1)
        await services.relations.unfollow(viewer.id, bob.id)
        await services.notices.relation_changed(viewer.id, bob.id, "unfollow")
        assert await until(lambda: not sub.queue.empty())
        release.set()
        await refreshing
        assert bob.id not in sub.followees
        assert {e.kind for e in queued(sub)} == {Kind.REMOVED}
        assert hub.channel_count == 2


VERBS = ("follow", "unfollow", "mute", "unmute", "block", "unblock")
EXAMPLES = itertools.count()


@given(
    steps=st.lists(
        st.tuples(st.integers(0, 3), st.integers(0, 3), st.sampled_from(VERBS), st.booleans()),
        min_size=1,
        max_size=12,
    )
)
@settings(max_examples=25)
async def test_after_a_re_read_the_hub_agrees_with_postgresql_whatever_notices_were_lost(
    services: Services, steps: list[tuple[int, int, str, bool]]
) -> None:
    # Relationship changes between four users, none announced; a re-read after some of them.
    # After the last re-read each subscriber's relationships and the hub's channels are
    # PostgreSQL's, and each subscriber was told: REMOVED for every hidden author's posts,
    # RESYNC when an author was revealed.
    n = next(EXAMPLES)  # the examples share one schema: fresh users for each
    users = [(await services.users.create(f"e{n}u{i}", "u", "x")).id for i in range(4)]
    for u in users:
        await services.posts.create(u, "hello")
    hub = services.live
    async with hub.subscribe(users[0]) as first, hub.subscribe(users[1]) as second:
        subs = (first, second)
        seen = {s: s.visible() for s in subs}
        for actor, target, verb, re_read in [*steps, (0, 0, "", True)]:
            if verb and actor != target:
                with contextlib.suppress(FeedError):  # following across a block is refused
                    await getattr(services.relations, verb)(users[actor], users[target])
            if not re_read:
                continue
            await hub.refresh()
            truth = await hub.relations([s.viewer for s in subs])
            for sub in subs:
                assert Relations(sub.followees, frozenset(sub.hidden)) == truth[sub.viewer]
                events = queued(sub)
                now = sub.visible()
                assert (RESYNC in events) == bool(now - seen[sub])
                assert {e.author_id for e in events if e.kind is Kind.REMOVED} == seen[sub] - now
                seen[sub] = now
            wanted = {a for s in subs for a in s.authors()}
            assert hub.channel_count == len(wanted) + len(subs)


# ---- metrics -------------------------------------------------------------------------------


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_the_hub_counts_subscribers_deliveries_resyncs_and_overflows(services: Services) -> None:
    viewer = await services.users.create("viewer", "viewer", "x")
    open_before = sample("homefeed_live_subscribers")
    async with services.live.subscribe(viewer.id) as sub:
        assert sample("homefeed_live_subscribers") == open_before + 1
        delivered = sample("homefeed_live_events_delivered_total", kind="ADDED")
        resyncs = sample("homefeed_live_resyncs_total")
        overflows = sample("homefeed_live_queue_overflows_total")
        for i in range(3):
            sub.offer(added(i))
        for _ in range(3):
            await sub.next()
        assert sample("homefeed_live_events_delivered_total", kind="ADDED") == delivered + 3
        sub.offer(RESYNC)
        sub.offer(RESYNC)  # one queued already covers it: not sent twice
        assert sample("homefeed_live_resyncs_total") == resyncs + 1
        await sub.next()
        for i in range(QUEUE_SIZE * 3):  # overflows once, then drops until the RESYNC is taken
            sub.offer(added(i))
        assert sample("homefeed_live_queue_overflows_total") == overflows + 1
        assert sample("homefeed_live_resyncs_total") == resyncs + 2
        assert await sub.next() is RESYNC
        assert sample("homefeed_live_events_delivered_total", kind="RESYNC") >= 2
    assert sample("homefeed_live_subscribers") == open_before


@pytest.mark.usefixtures("single_redis")  # the cluster's reconnects: tests/feed/test_cluster_failover.py
async def test_a_reconnect_that_fails_is_retried_not_spun_on(
    services: Services, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Redis gone while the hub reconnects (a restart) left it with no subscription; the listen
    # loop then failed at once on every turn, forever, burning a core and never listening again.
    author, fan = [await services.users.create(h, h, "x") for h in ("author", "fan")]
    await services.relations.follow(fan.id, author.id)
    hub = services.live
    assert isinstance(hub._redis, Redis)
    real_pubsub = hub._redis.pubsub
    failures = 0

    def flaky_pubsub(**kwargs: object) -> object:
        nonlocal failures
        pubsub = real_pubsub(**kwargs)
        if failures < 3:
            failures += 1

            async def refuse(*channels: object, **handlers: object) -> None:
                raise ConnectionError("Redis is restarting")

            pubsub.subscribe = refuse  # type: ignore[method-assign]
        return pubsub

    async with hub.subscribe(fan.id) as sub:
        monkeypatch.setattr(hub._redis, "pubsub", flaky_pubsub)
        assert isinstance(hub._pubsub, ClassicSubscription) and hub._pubsub.pubsub.connection is not None
        await hub._pubsub.pubsub.connection.disconnect()
        for _ in range(200):
            if failures == 3 and hub.channel_count:
                break
            await asyncio.sleep(0.02)
        assert failures == 3 and hub.channel_count, "the hub never resubscribed"
        post = await services.posts.create(author.id, "after the restart")
        await services.notices.post_reached(author.id, post.id, -1, MAX_ID, True)
        events = [await asyncio.wait_for(sub.next(), 5) for _ in range(2)]
        assert events[0] == RESYNC
        assert (events[1].kind, events[1].post_id) == (Kind.ADDED, post.id)
    lost = [r for r in caplog.records if "live hub lost Redis" in r.getMessage()]
    assert len(lost) <= 10, f"{len(lost)} failed turns: the loop retried without waiting"


@given(
    st.lists(st.tuples(st.booleans(), st.integers(0, 3), st.integers(0, 5), st.booleans()), max_size=80),
    st.sampled_from([1, 2, _Index.LIST_MAX]),
)
def test_the_hub_index_keeps_exactly_the_members_added_and_not_dropped(
    steps: list[tuple[bool, int, int, bool]], list_max: int
) -> None:
    # One member per key is kept as itself, more in a list; a long list's drops are noted and
    # carried out later (list_max small, so that path runs): none may lose or invent a member.
    subs = [Subscriber(viewer=i) for i in range(6)]
    index, truth = _Index(list_max), defaultdict[int, set[Subscriber]](set)
    registered: set[Subscriber] = set()  # under some key: what `new` may not say
    for adding, key, who, fresh in steps:
        sub = subs[who]
        if adding:
            new = fresh and sub not in registered and all(sub not in v for v in truth.values())
            assert index.add(key, sub, new=new) == (not truth[key])
            truth[key].add(sub)
            registered.add(sub)
        else:
            had = sub in truth[key]
            truth[key].discard(sub)
            assert index.drop(key, sub) == (had and not truth[key])
        assert {k: set(index.get(k)) for k in index} == {k: v for k, v in truth.items() if v}
        assert all(len(index.get(k)) == len(set(index.get(k))) for k in index)
        assert len(index) == sum(1 for v in truth.values() if v)


async def test_a_closed_hub_opens_no_connection_and_starts_no_task(services: Services) -> None:
    # At shutdown the hub closes while subscribers' streams are still ending: their detach, and
    # any refresh, must not open a subscription or restart the hub's tasks.
    viewer, other = [await services.users.create(h, h, "x") for h in ("viewer", "other")]
    hub = LiveHub(services.redis, services.pool, services.posts, services.settings.redis_prefix)
    sub = await hub.attach(viewer.id)
    channels = [hub.channels.user(viewer.id), hub.channels.author(viewer.id), hub.channels.user(other.id)]
    assert await subscriber_counts(services.redis, channels) == [1, 1, 0]
    await hub.close()

    await hub.detach(sub)
    await hub.refresh()
    with pytest.raises(HubClosed):
        await hub.attach(other.id)  # refused, not left waiting for events that never come

    assert await subscriber_counts(services.redis, channels) == [0, 0, 0]
    hub_tasks = {"live-hub", "live-hub-refresh", "live-hub-shard"}
    assert not [t for t in asyncio.all_tasks() if t.get_name() in hub_tasks and not t.done()]
    assert hub.subscriber_count == 0 and hub.channel_count == 0


async def test_a_subscriber_cancelled_as_its_subscribe_is_written_leaves_the_hub(services: Services) -> None:
    # The graphql-ws teardown hang: an operation cancelled while its subscriber attached, just as
    # the (S)SUBSCRIBE went out, lost the cancel inside redis-py's write, went on to wait for
    # events with the cancel pending, and the connection's teardown waited for it forever.
    viewer = await services.users.create("viewer", "viewer", "x")
    hub = services.live

    async def listen() -> None:
        async with hub.subscribe(viewer.id) as sub:
            await sub.next()  # where it waited forever; the cancel may land here or before

    outcome = await cancelled_on_write(b"SUBSCRIBE", listen)
    assert outcome.fired == 1
    assert outcome.ended, "the cancel was lost: the subscriber waits for events"
    assert outcome.cancelled
    assert hub.subscriber_count == 0
