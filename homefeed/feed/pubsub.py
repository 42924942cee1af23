"""The live hub's one subscription, on a single server (SUBSCRIBE) or a cluster (SSUBSCRIBE).

Classic pub/sub on a cluster is broadcast to every node, so there notices go out with
SPUBLISH and the hub listens with SSUBSCRIBE: a channel lives on the master of its slot,
and the hub holds one connection per master that owns a channel it subscribes to (not one
per viewer). A node that drops a subscription by itself (its slot moved, or the node
failed) fails the subscription like a lost connection: the hub resubscribes everything
on a fresh one, reading the slot map anew, and asks its viewers to resync.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from typing import Protocol

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from homefeed.feed.redis_client import RedisClient

Message = tuple[str, bytes]  # channel, payload
CLOSE_SECONDS = 2.0


class SubscriptionClosed(RedisConnectionError):
    """A closed subscription was asked to listen: it opens no connection again."""


class Subscription(Protocol):
    """What the hub needs of its subscription: channels in and out, and the next message.

    Once closed it is inert: unsubscribing does nothing, subscribing or reading raises
    SubscriptionClosed, and neither opens a connection (the hub opens a new subscription to
    reconnect, never reuses a closed one).
    """

    async def subscribe(self, *channels: str) -> None: ...

    async def unsubscribe(self, *channels: str) -> None: ...

    async def next_message(self, wait: float) -> Message | None:
        """The next message, None after `wait` seconds without one; raises when the link failed."""
        ...

    async def aclose(self) -> None: ...


async def publish(redis: RedisClient, channel: str, data: bytes) -> None:
    """Publish a notice: SPUBLISH to the channel's shard on a cluster, PUBLISH otherwise."""
    if isinstance(redis, RedisCluster):
        await redis.spublish(channel, data)
    else:
        await redis.publish(channel, data)


def open_subscription(redis: RedisClient) -> Subscription:
    """A new, empty subscription for this client's server or cluster."""
    if isinstance(redis, RedisCluster):
        return ShardedSubscription(redis)
    return ClassicSubscription(redis.pubsub(ignore_subscribe_messages=True))


class ClassicSubscription:
    """SUBSCRIBE on one connection to a single server."""

    def __init__(self, pubsub: PubSub) -> None:
        self.pubsub = pubsub
        # redis-py's PubSub takes a new connection for any command after aclose: a subscriber
        # leaving during shutdown would open one to unsubscribe from nothing.
        self._closed = False

    async def subscribe(self, *channels: str) -> None:
        if self._closed:
            raise SubscriptionClosed("the live subscription is closed")
        await self.pubsub.subscribe(*channels)

    async def unsubscribe(self, *channels: str) -> None:
        if not self._closed:
            await self.pubsub.unsubscribe(*channels)

    async def next_message(self, wait: float) -> Message | None:
        if self._closed:
            raise SubscriptionClosed("the live subscription is closed")
        message = await self.pubsub.get_message(timeout=wait)
        if message is None or message["type"] != "message":
            return None
        return message["channel"].decode(), message["data"]

    async def aclose(self) -> None:
        self._closed = True
        await self.pubsub.aclose()  # type: ignore[no-untyped-call]


class _NodeLink:
    """One node's SSUBSCRIBE connection and the task that reads it into the shared inbox."""

    def __init__(self, node: ClusterNode, inbox: asyncio.Queue[Message | Exception]) -> None:
        options = node.connection_kwargs
        self.client = Redis(
            host=node.host,
            port=int(node.port),
            username=options.get("username"),
            password=options.get("password"),
            socket_connect_timeout=options.get("socket_connect_timeout") or 2,
            # No silent reconnect: redis-py would resubscribe behind our back and the notices sent
            # meanwhile would be lost unnoticed. A lost link fails the subscription instead, and the
            # hub resubscribes everything and sends its viewers a RESYNC.
            retry=Retry(NoBackoff(), 0),
        )
        self.pubsub = self.client.pubsub()
        self.channels: set[str] = set()
        self.leaving: set[str] = set()  # unsubscribed by us: their confirmation is expected
        self._inbox = inbox
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self.task is None:
            self.task = asyncio.create_task(self._read(), name="live-hub-shard")

    async def _read(self) -> None:
        while True:
            try:
                message = await self.pubsub.get_message(timeout=1.0)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._inbox.put_nowait(exc)
                return
            if message is None:
                continue
            kind, channel = message["type"], message["channel"]
            name = channel.decode() if isinstance(channel, bytes) else str(channel)
            if kind == "smessage":
                self._inbox.put_nowait((name, message["data"]))
            elif kind == "sunsubscribe":
                if name in self.leaving:
                    self.leaving.discard(name)
                else:
                    # The node let go of a channel we still want: its slot moved elsewhere.
                    self._inbox.put_nowait(RedisConnectionError(f"shard channel {name} moved"))
                    return

    async def close(self) -> None:
        # Bounded: a link whose node is gone may be stuck reconnecting inside redis-py.
        if self.task is not None:
            self.task.cancel()
            await asyncio.wait([self.task], timeout=CLOSE_SECONDS)
        with contextlib.suppress(Exception):
            async with asyncio.timeout(CLOSE_SECONDS):
                await self.pubsub.aclose()  # type: ignore[no-untyped-call]
        with contextlib.suppress(Exception):
            async with asyncio.timeout(CLOSE_SECONDS):
                await self.client.aclose()


class ShardedSubscription:
    """SSUBSCRIBE on a cluster: one connection per master owning a subscribed channel."""

    def __init__(self, cluster: RedisCluster) -> None:
        self._cluster = cluster
        self._links: dict[str, _NodeLink] = {}  # by node name (host:port)
        self._where: dict[str, str] = {}  # channel -> node name
        self._inbox: asyncio.Queue[Message | Exception] = asyncio.Queue()
        self._mapped = False
        self._closed = False  # then subscribe would map the cluster and open links anew

    @property
    def node_count(self) -> int:
        """Connections held: one per master that owns a subscribed channel."""
        return len(self._links)

    async def subscribe(self, *channels: str) -> None:
        if self._closed:
            raise SubscriptionClosed("the live subscription is closed")
        if not self._mapped:
            # A fresh subscription (first, or after a failure) reads the cluster's map anew.
            await self._cluster.initialize()
            await self._cluster.nodes_manager.initialize()
            self._mapped = True
        by_node: defaultdict[str, list[str]] = defaultdict(list)
        for channel in channels:
            node = self._cluster.get_node_from_key(channel)
            if node is None:
                raise RedisConnectionError(f"no master serves the slot of {channel}")
            link = self._links.get(node.name)
            if link is None:
                link = self._links[node.name] = _NodeLink(node, self._inbox)
            by_node[node.name].append(channel)
        for name, group in by_node.items():
            link = self._links[name]
            # One SSUBSCRIBE per slot: the command takes channels of a single slot only.
            for same_slot in self._by_slot(group):
                await link.pubsub.ssubscribe(*same_slot)
            link.channels.update(group)
            link.start()
            for channel in group:
                self._where[channel] = name

    async def unsubscribe(self, *channels: str) -> None:
        by_node: defaultdict[str, list[str]] = defaultdict(list)
        for channel in channels:
            name = self._where.pop(channel, None)
            if name is not None:
                by_node[name].append(channel)
        for name, group in by_node.items():
            link = self._links[name]
            link.leaving.update(group)
            link.channels.difference_update(group)
            for same_slot in self._by_slot(group):
                await link.pubsub.sunsubscribe(*same_slot)

    def _by_slot(self, channels: list[str]) -> list[list[str]]:
        groups: defaultdict[int, list[str]] = defaultdict(list)
        for channel in channels:
            groups[self._cluster.keyslot(channel)].append(channel)
        return list(groups.values())

    async def next_message(self, wait: float) -> Message | None:
        if self._closed:
            raise SubscriptionClosed("the live subscription is closed")
        try:
            async with asyncio.timeout(wait):  # not wait_for, which can lose a cancel (heartbeat.py)
                item = await self._inbox.get()
        except TimeoutError:
            return None
        if isinstance(item, Exception):
            raise item
        return item

    async def aclose(self) -> None:
        # Where each channel lived goes too: a subscriber leaving after the hub closed (its
        # stream ending during shutdown) unsubscribes here, and must find nothing to do rather
        # than a channel on a link that is gone (a KeyError that replaced its cancellation).
        links, self._links, self._where = list(self._links.values()), {}, {}
        self._closed = True
        for link in links:
            await link.close()


async def subscriber_counts(redis: RedisClient, channels: list[str]) -> list[int]:
    """How many connections subscribe to each channel (PUBSUB NUMSUB, or SHARDNUMSUB on a cluster)."""
    if not isinstance(redis, RedisCluster):
        return [int(n) for _, n in await redis.pubsub_numsub(*channels)]
    # The slot map is read on a client's first command; before it, get_node_from_key knows
    # no slot (SlotNotCoveredError). initialize() reads it once and is a no-op after.
    await redis.initialize()
    counts = []
    for channel in channels:
        node = redis.get_node_from_key(channel)
        reply = await redis.execute_command("PUBSUB", "SHARDNUMSUB", channel, target_nodes=node)
        counts.append(int(reply[1]))
    return counts
