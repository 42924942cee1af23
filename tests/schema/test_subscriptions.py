"""Live feed updates through a real GraphQL websocket client (gql), over both protocols."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, cast

import pytest
import websockets
from gql import Client, gql
from gql.transport.exceptions import TransportError
from gql.transport.websockets import WebsocketsTransport
from redis.asyncio.cluster import RedisCluster
from websockets.typing import Origin, Subprotocol

from homefeed.feed import pubsub
from homefeed.feed.services import Services
from tests.api import Account, Api
from tests.schema.pubsub_kill import hub_listening, kill_own_pubsub, own_pubsub_clients

PROTOCOLS = [WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL, WebsocketsTransport.APOLLO_SUBPROTOCOL]
UPDATES = gql("subscription { homeFeedUpdates { kind postId cursor post { id text author { handle } } } }")
WAIT = 5.0
TRANSPORT_WS = [Subprotocol("graphql-transport-ws")]


class Feed:
    """A subscription consumed in the background into a queue."""

    def __init__(self) -> None:
        self.updates: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def next(self) -> dict[str, Any]:
        return await asyncio.wait_for(self.updates.get(), WAIT)

    async def nothing_pending(self) -> bool:
        await asyncio.sleep(0.3)
        return self.updates.empty()


def transport(url: str, protocol: str, token: str | None, **kwargs: Any) -> WebsocketsTransport:
    payload = {"authorization": f"Bearer {token}"} if token else {}
    ws = url.replace("http://", "ws://") + "/graphql"
    return WebsocketsTransport(url=ws, init_payload=payload, subprotocols=[protocol], **kwargs)


@asynccontextmanager
async def subscribed(
    services: Services, url: str, protocol: str, who: Account, *followees: Account
) -> AsyncIterator[Feed]:
    """who's subscription, yielded once the hub listens on who's and the followees' channels:
    an event sent before that would never reach it (a fixed sleep lost that race under load)."""
    feed = Feed()
    async with Client(transport=transport(url, protocol, who.token)) as session:

        async def pump() -> None:
            async for result in session.subscribe(UPDATES):
                await feed.updates.put(result["homeFeedUpdates"])

        task = asyncio.create_task(pump())
        try:
            await hub_listening(services, who, *followees)
            yield feed
        finally:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task


async def accounts(http: Api, *handles: str) -> list[Account]:
    return [await http.sign_up(h) for h in handles]


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_added_and_removed_follow_the_feed(
    server: str, http: Api, services: Services, protocol: str
) -> None:
    alice, bob, stranger = await accounts(http, "alice", "bob", "stranger")
    (await http.act(alice, "follow", bob)).ok()
    async with subscribed(services, server, protocol, alice, bob) as feed:
        await http.post(stranger, "not followed: never announced")
        first = await http.post(bob, "hello alice")
        added = await feed.next()
        assert added["kind"] == "ADDED" and added["postId"] == first
        assert added["post"] == {"id": first, "text": "hello alice", "author": {"handle": "bob"}}
        # The cursor pages the home feed from right after this post.
        assert (await http.feed(alice, 5, added["cursor"])).ok()["homeFeed"]["edges"] == []

        own = await http.post(alice, "my own")
        assert (await feed.next())["postId"] == own

        await http.gql("mutation($id: ID!) { deletePost(id: $id) }", {"id": first}, token=bob.token)
        assert await feed.next() == {
            "kind": "REMOVED",
            "postId": first,
            "cursor": added["cursor"],
            "post": None,
        }

        second = await http.post(bob, "before the unfollow")
        assert (await feed.next())["postId"] == second
        (await http.act(alice, "unfollow", bob)).ok()
        gone = await feed.next()
        assert (gone["kind"], gone["postId"]) == ("REMOVED", second)
        await http.post(bob, "after the unfollow: not announced")
        assert await feed.nothing_pending()


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_block_and_mute_remove_and_silence(
    server: str, http: Api, services: Services, protocol: str
) -> None:
    alice, bob, carol = await accounts(http, "alice", "bob", "carol")
    for other in (bob, carol):
        (await http.act(alice, "follow", other)).ok()
    async with subscribed(services, server, protocol, alice, bob, carol) as feed:
        b = await http.post(bob, "bob speaks")
        c = await http.post(carol, "carol speaks")
        got = {(await feed.next())["postId"], (await feed.next())["postId"]}
        assert got == {b, c}
        (await http.act(alice, "mute", bob)).ok()
        assert (await feed.next())["postId"] == b  # REMOVED
        (await http.act(carol, "block", alice)).ok()  # blocked BY carol: hidden both ways
        assert (await feed.next())["postId"] == c
        await http.post(bob, "muted")
        await http.post(carol, "blocked")
        assert await feed.nothing_pending()


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_missing_or_bad_tokens_are_refused(server: str, http: Api, protocol: str) -> None:
    for token in (None, "not-a-token"):
        client = Client(transport=transport(server, protocol, token))
        with pytest.raises(TransportError):
            async with client as session:
                async for _ in session.subscribe(UPDATES):
                    break


async def test_graphql_transport_ws_closes_with_forbidden(server: str) -> None:
    ws_url = server.replace("http://", "ws://") + "/graphql"
    async with websockets.connect(ws_url, subprotocols=TRANSPORT_WS) as ws:
        await ws.send('{"type": "connection_init", "payload": {}}')
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await ws.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403


async def test_foreign_origins_are_refused_at_the_handshake(server: str) -> None:
    ws_url = server.replace("http://", "ws://") + "/graphql"
    with pytest.raises(websockets.InvalidStatus) as refused:
        async with websockets.connect(
            ws_url, subprotocols=TRANSPORT_WS, origin=Origin("https://evil.example")
        ):
            pass
    assert refused.value.response.status_code == 403


async def test_subscriptions_per_connection_are_capped(server: str, http: Api) -> None:
    (alice,) = await accounts(http, "alice")
    ws_url = server.replace("http://", "ws://") + "/graphql"
    async with websockets.connect(ws_url, subprotocols=TRANSPORT_WS) as ws:
        await ws.send(
            f'{{"type": "connection_init", "payload": {{"authorization": "Bearer {alice.token}"}}}}'
        )
        assert "connection_ack" in str(await ws.recv())
        query = "subscription { homeFeedUpdates { kind } }"
        for i in range(11):
            await ws.send(f'{{"id": "{i}", "type": "subscribe", "payload": {{"query": "{query}"}}}}')
        reply = await asyncio.wait_for(ws.recv(), WAIT)
        assert '"id":"10"' in str(reply).replace(" ", "") and "limit" in str(reply).lower()


async def test_one_redis_subscription_connection_per_process(
    server: str, http: Api, services: Services
) -> None:
    people = await accounts(http, *(f"user{i}" for i in range(6)))
    async with (
        subscribed(services, server, PROTOCOLS[0], people[0]),
        subscribed(services, server, PROTOCOLS[1], people[1]),
        subscribed(services, server, PROTOCOLS[0], people[2]),
        subscribed(services, server, PROTOCOLS[0], people[3]),
    ):
        redis = services.redis
        if isinstance(redis, RedisCluster):
            # One connection per master that owns a subscribed channel, never one per viewer.
            replies = await redis.client_list(_type="pubsub", target_nodes=RedisCluster.ALL_NODES)
            by_node = cast(dict[str, list[object]], replies)
            assert all(len(clients) <= 1 for clients in by_node.values())
            assert 1 <= sum(len(clients) for clients in by_node.values()) <= len(redis.get_primaries())
        else:
            # The server may be shared: count this service's connections only.
            assert len(await own_pubsub_clients(services)) == 1
        assert services.live.subscriber_count == 4


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_redis_reconnect_tells_every_subscriber_to_resync(
    server: str, http: Api, services: Services, protocol: str
) -> None:
    alice, bob = await accounts(http, "alice", "bob")
    (await http.act(alice, "follow", bob)).ok()
    # Dropped before its subscription reaches Redis, the hub's connection is no pub/sub one yet:
    # nothing is lost and no RESYNC follows. subscribed() waits until Redis has it.
    async with subscribed(services, server, protocol, alice, bob) as feed:
        await kill_own_pubsub(services)
        resync = await feed.next()
        assert resync == {"kind": "RESYNC", "postId": "", "cursor": None, "post": None}
        # And it is live again after resubscribing.
        post = await http.post(bob, "after the reconnect")
        assert (await feed.next())["postId"] == post


RESYNC = {"kind": "RESYNC", "postId": "", "cursor": None, "post": None}


async def feed_ids(http: Api, who: Account) -> list[str]:
    return [e["node"]["id"] for e in (await http.feed(who, 20)).ok()["homeFeed"]["edges"]]


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_follow_refollow_and_unmute_send_resync(
    server: str, http: Api, services: Services, protocol: str
) -> None:
    # Each brings posts into the feed that the client has never been sent: RESYNC makes it
    # refetch them, and from then on the author's new posts arrive live.
    alice, bob = await accounts(http, "alice", "bob")
    before = await http.post(bob, "before the follow")
    async with subscribed(services, server, protocol, alice) as feed:
        (await http.act(alice, "follow", bob)).ok()
        assert await feed.next() == RESYNC
        assert before in await feed_ids(http, alice)  # what the refetch finds
        after = await http.post(bob, "after the follow")
        assert (await feed.next())["postId"] == after

        (await http.act(alice, "unfollow", bob)).ok()
        gone = {(await feed.next())["postId"] for _ in range(2)}
        assert gone == {before, after}
        (await http.act(alice, "follow", bob)).ok()  # re-follow
        assert await feed.next() == RESYNC
        assert set(await feed_ids(http, alice)) >= {before, after}

        (await http.act(alice, "mute", bob)).ok()
        assert {(await feed.next())["postId"] for _ in range(2)} == {before, after}
        (await http.act(alice, "unmute", bob)).ok()
        assert await feed.next() == RESYNC
        again = await http.post(bob, "after the unmute")
        assert (await feed.next())["postId"] == again
        assert await feed.nothing_pending()


async def test_a_follow_whose_notice_is_lost_heals_within_the_refresh(
    server: str, http: Api, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The mutation's notice never reaches Redis (as when the publish fails): the hub finds the
    # follow on its own periodic re-read, sends RESYNC, and listens to the new followee.
    services.live.refresh_seconds = 0.5
    alice, bob = await accounts(http, "alice", "bob")

    async def lost(user: int, other: int, verb: str) -> None:
        return None

    monkeypatch.setattr(services.notices, "relation_changed", lost)
    async with subscribed(services, server, PROTOCOLS[0], alice) as feed:
        (await http.act(alice, "follow", bob)).ok()
        assert await feed.next() == RESYNC
        post = await http.post(bob, "heard once the hub caught up")
        assert (await feed.next())["postId"] == post


async def test_a_follow_is_announced_only_once_the_hub_listens_to_the_author(
    server: str, http: Api, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The client refetches on RESYNC; a post made after that refetch must come live. Sent before
    # the new author's SUBSCRIBE had reached Redis (slowed here), such a post was in neither.
    alice, bob = await accounts(http, "alice", "bob")
    async with subscribed(services, server, PROTOCOLS[0], alice) as feed:
        for kind in (pubsub.ShardedSubscription, pubsub.ClassicSubscription):
            monkeypatch.setattr(kind, "subscribe", _slowed(kind.subscribe))
        (await http.act(alice, "follow", bob)).ok()
        assert await feed.next() == RESYNC
        post = await http.post(bob, "right after the refetch")
        assert (await feed.next())["postId"] == post


def _slowed(subscribe: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
    async def slowly(self: object, *channels: str) -> None:
        await asyncio.sleep(1.0)
        await subscribe(self, *channels)

    return slowly
