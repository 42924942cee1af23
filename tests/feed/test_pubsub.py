"""The hub's subscription to Redis (feed/pubsub.py), on a single server and on the cluster."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from homefeed.feed.config import Settings
from homefeed.feed.pubsub import ShardedSubscription, SubscriptionClosed, open_subscription, subscriber_counts
from homefeed.feed.redis_client import RedisClient, client_name, open_redis


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


async def named_connections(redis: RedisClient, name: str) -> int:
    """Connections to a single server whose CLIENT SETNAME is name."""
    assert isinstance(redis, Redis)
    return sum(1 for c in await redis.client_list() if c.get("name") == name)


async def test_a_closed_subscription_opens_no_connection_and_listens_to_nothing(
    redis: RedisClient, settings_: Settings
) -> None:
    # redis-py's PubSub takes a fresh connection for a command sent after it was closed: a
    # subscriber leaving during shutdown reconnected only to unsubscribe from nothing.
    assert settings_.redis_url
    name = client_name(settings_.redis_prefix) + ":closed"
    own = await open_redis(settings_.redis_url, name=name)
    try:
        channels = [f"{settings_.redis_prefix}:user:{i}" for i in (1, 2)]
        subscription = open_subscription(own)
        await subscription.subscribe(channels[0])
        await subscription.aclose()
        held = None if isinstance(subscription, ShardedSubscription) else await named_connections(redis, name)

        await subscription.unsubscribe(channels[0])  # a no-op
        with pytest.raises(SubscriptionClosed):
            await subscription.subscribe(channels[1])
        with pytest.raises(SubscriptionClosed):
            await subscription.next_message(0.1)

        assert await subscriber_counts(redis, channels) == [0, 0]
        if isinstance(subscription, ShardedSubscription):
            assert subscription.node_count == 0  # no link to any master opened again
        else:
            assert await named_connections(redis, name) == held  # no connection opened again
    finally:
        await own.aclose()
