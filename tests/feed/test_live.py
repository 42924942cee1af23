from __future__ import annotations

import asyncio

from homefeed.feed.live import QUEUE_SIZE, RESYNC, Kind, LiveEvent, Notice, Subscriber
from homefeed.feed.services import Services


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


def test_visibility_follows_relationships() -> None:
    sub = Subscriber(viewer=1, followees={2, 3}, hidden={3})
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
        counts = await services.redis.pubsub_numsub(*channels)
        seen = {name.decode() if isinstance(name, bytes) else name for name, n in counts if n}
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
