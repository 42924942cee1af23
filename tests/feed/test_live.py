from __future__ import annotations

from homefeed.feed.live import QUEUE_SIZE, RESYNC, Kind, LiveEvent, Notice, Subscriber


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
