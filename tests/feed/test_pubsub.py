"""The hub's subscription to Redis (feed/pubsub.py), on a single server and on the cluster."""

from __future__ import annotations

from homefeed.feed.config import Settings
from homefeed.feed.pubsub import open_subscription
from homefeed.feed.redis_client import RedisClient


async def test_a_subscriber_leaving_after_the_subscription_closed_finds_nothing_to_do(
    redis: RedisClient, settings_: Settings
) -> None:
    # The hub closes its subscription at shutdown while subscribers' streams are still ending;
    # their detach then unsubscribes from the closed one. On the cluster that raised a KeyError
    # (the channel's link was gone), which replaced the stream's cancellation with an error.
    channel = f"{settings_.redis_prefix}:user:1"
    subscription = open_subscription(redis)
    await subscription.subscribe(channel)
    await subscription.aclose()
    await subscription.unsubscribe(channel)
    await subscription.aclose()
