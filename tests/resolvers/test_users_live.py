"""Relationship mutations announce themselves on the channels live hubs listen to."""

from __future__ import annotations

import asyncio

import pytest

from homefeed.feed.live import Notice
from homefeed.feed.pubsub import Subscription, open_subscription
from homefeed.feed.services import Services
from tests.api import Api

# verb -> (what must be there first, whether the other user's channel hears it too: a block hides both ways)
VERBS = {
    "follow": (None, False),
    "unfollow": ("follow", False),
    "mute": (None, False),
    "unmute": ("mute", False),
    "block": (None, True),
    "unblock": ("block", True),
}


async def heard(subscription: Subscription, seconds: float) -> list[tuple[str, Notice]]:
    """The notices received within seconds, in channel order (on a cluster, two channels may
    live on two nodes, whose connections deliver in no particular order between them)."""
    notices = []
    deadline = asyncio.get_running_loop().time() + seconds
    while (left := deadline - asyncio.get_running_loop().time()) > 0:
        message = await subscription.next_message(wait=left)
        if message is not None:
            notices.append((message[0], Notice.decode(message[1])))
    return sorted(notices, key=lambda n: n[0])


@pytest.mark.parametrize("verb", list(VERBS))
async def test_each_relationship_mutation_publishes_its_notice(
    api: Api, services: Services, verb: str
) -> None:
    # Live hubs re-read a viewer's relationships when its channel hears a notice: every
    # mutation that changes what a viewer may see must send one, to each viewer it affects.
    first, both_ways = VERBS[verb]
    alice, bob = await api.sign_up("alice"), await api.sign_up("bob")
    a, b = [(await services.users.by_handle(x.handle) or pytest.fail(x.handle)).id for x in (alice, bob)]
    channels = services.notices.channels
    pubsub = open_subscription(services.redis)
    try:
        if first is not None:
            (await api.act(alice, first, bob)).ok()
        await pubsub.subscribe(channels.user(a), channels.user(b))
        await heard(pubsub, 0.1)
        (await api.act(alice, verb, bob)).ok()
        got = await heard(pubsub, 0.5)
    finally:
        await pubsub.aclose()
    expected = [(channels.user(a), Notice("rel", other=b, verb=verb))]
    if both_ways:
        expected.append((channels.user(b), Notice("rel", other=a, verb=verb)))
    assert got == sorted(expected, key=lambda n: n[0])
