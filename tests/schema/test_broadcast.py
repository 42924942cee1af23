"""Render once, send many: every subscriber gets exactly what executing its own document gives.

Each document runs twice per viewer over real websockets: as written (rendered once per event
and group, schema/broadcast.py) and with its root selection under `@include(if: true)`, which means
the same but is executed per subscriber by Strawberry. The payloads must be equal, for many
documents (aliases, named and inline fragments, nested authors, per-viewer fields) and viewers
who differ in what depends on the viewer (liked or not, the author themselves).
"""

from __future__ import annotations

import asyncio
import json
import random
from collections import defaultdict
from typing import Any

import httpx
import pytest
import websockets
from graphql import FragmentDefinitionNode, OperationDefinitionNode, parse, validate
from websockets.typing import Subprotocol

from homefeed.feed.live import MAX_ID, LiveEvent, Subscriber
from homefeed.feed.services import Services
from homefeed.schema import schema
from homefeed.schema.broadcast import Together, shape_of
from homefeed.schema.node import expect_global_id
from tests.api import Account, Api
from tests.server import running_server

UPDATE_FIELDS = ["kind", "postId", "cursor", "__typename"]
POST_FIELDS = ["id", "text", "createdAt", "likeCount", "viewerHasLiked", "__typename"]
USER_FIELDS = [
    "id",
    "handle",
    "displayName",
    "createdAt",
    "followerCount",
    "followingCount",
    "viewerFollows",
    "__typename",
]
HAND_WRITTEN = [
    "subscription { homeFeedUpdates { kind postId cursor post { id text author { handle } } } }",
    "subscription { a: homeFeedUpdates { c1: cursor c2: cursor kind p: post { t: text } } }",
    "subscription Named { homeFeedUpdates { post { liked: viewerHasLiked author { f: viewerFollows } } } }",
    "subscription { homeFeedUpdates { ...U } } fragment U on FeedUpdate { kind post { ...P } }"
    " fragment P on Post { viewerHasLiked author { ...A } } fragment A on User { viewerFollows handle }",
]
MAX_PER_CONNECTION = 10  # the server's cap on subscriptions per connection


def _pick(rng: random.Random, names: list[str]) -> list[str]:
    chosen = rng.sample(names, rng.randint(1, len(names)))
    return [f"{name}{rng.randint(0, 99)}: {name}" if rng.random() < 0.3 else name for name in chosen]


def _user(rng: random.Random) -> str:
    return " ".join(_pick(rng, USER_FIELDS))


def _post(rng: random.Random, fragments: dict[str, str]) -> str:
    parts = _pick(rng, POST_FIELDS)
    if rng.random() < 0.7:
        parts.append(f"author {{ {_user(rng)} }}")
    if rng.random() < 0.3:
        fragments["PostBits"] = f"fragment PostBits on Post {{ {' '.join(_pick(rng, POST_FIELDS))} }}"
        parts.append("...PostBits")
    if rng.random() < 0.3:
        parts.append(f"... on Post {{ {' '.join(_pick(rng, POST_FIELDS))} }}")
    return " ".join(parts)


def generated(seed: int) -> str:
    """A random valid homeFeedUpdates document: aliases, fragments, nesting, per-viewer fields."""
    rng = random.Random(seed)
    fragments: dict[str, str] = {}
    parts = _pick(rng, UPDATE_FIELDS)
    if rng.random() < 0.85:
        parts.append(f"post {{ {_post(rng, fragments)} }}")
    body = " ".join(parts)
    if rng.random() < 0.3:
        fragments["UpdateBits"] = f"fragment UpdateBits on FeedUpdate {{ {body} }}"
        body = "...UpdateBits"
    root = "homeFeedUpdates" if rng.random() < 0.5 else "updates: homeFeedUpdates"
    return f"subscription {{ {root} {{ {body} }} }} " + " ".join(fragments.values())


def per_subscriber(document: str) -> str:
    """The same document with its root selection in an `@include(if: true)` fragment: the same
    answer, but a document with directives is executed per subscriber."""
    opening = document.index("homeFeedUpdates {") + len("homeFeedUpdates {")
    depth, end = 1, opening
    while depth:
        depth += {"{": 1, "}": -1}.get(document[end], 0)
        end += 1
    body = document[opening : end - 1]
    return f"{document[:opening]} ... @include(if: true) {{{body}}} }}{document[end:]}"


def rendered_once(document: str) -> bool:
    """Whether the server renders this (valid) document once per event and group."""
    parsed = parse(document)
    assert not validate(schema._schema, parsed), document
    (operation,) = [d for d in parsed.definitions if isinstance(d, OperationDefinitionNode)]
    fragments = {d.name.value: d for d in parsed.definitions if isinstance(d, FragmentDefinitionNode)}
    return shape_of(operation, fragments) is not None


DOCUMENTS = HAND_WRITTEN + [generated(seed) for seed in range(16)]


async def _subscribe_all(
    base: str, who: Account, operations: list[tuple[str, str]], protocol: str
) -> tuple[list[Any], dict[str, list[dict[str, Any]]]]:
    """Open connections for who and start every (op id, document); frames are collected per op id."""
    received: dict[str, list[dict[str, Any]]] = defaultdict(list)
    sockets = []
    url = base.replace("http://", "ws://") + "/graphql"
    start_type = "start" if protocol == "graphql-ws" else "subscribe"
    for start in range(0, len(operations), MAX_PER_CONNECTION):
        ws = await websockets.connect(url, subprotocols=[Subprotocol(protocol)])
        init = {"type": "connection_init", "payload": {"authorization": f"Bearer {who.token}"}}
        await ws.send(json.dumps(init))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        for op_id, document in operations[start : start + MAX_PER_CONNECTION]:
            message = {"id": op_id, "type": start_type, "payload": {"query": document}}
            await ws.send(json.dumps(message))
        sockets.append(ws)
    return sockets, received


async def _pump(ws: Any, received: dict[str, list[dict[str, Any]]]) -> None:
    async for raw in ws:
        frame = json.loads(raw)
        if frame.get("type") in ("next", "data", "error"):
            received[frame["id"]].append(frame["payload"])


async def test_render_once_equals_per_subscriber_execution(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    # How many frames the live hub wrote straight to sockets (the rest went through Strawberry).
    written: list[int] = []
    deliver = Together.deliver

    async def counted(self: Together, event: LiveEvent, subscribers: list[Subscriber]) -> int:
        sent = await deliver(self, event, subscribers)
        written.append(sent)
        return sent

    monkeypatch.setattr(Together, "deliver", counted)
    for document in DOCUMENTS:
        assert rendered_once(document), document
        assert not rendered_once(per_subscriber(document)), document
    async with running_server(services) as base, httpx.AsyncClient(base_url=base) as client:
        http = Api(client)
        bob, alice, carol, dave = [await http.sign_up(h) for h in ("bob", "alice", "carol", "dave")]
        for viewer in (alice, carol, dave):
            await http.gql(
                "mutation($u: ID!) { follow(userId: $u) { id } }", {"u": bob.id}, token=viewer.token
            )
        await http.gql("mutation($u: ID!) { follow(userId: $u) { id } }", {"u": dave.id}, token=bob.token)
        post = await http.post(bob, "rendered once")
        for viewer in (alice, dave):
            (
                await http.gql(
                    "mutation($p: ID!) { likePost(id: $p) { id } }", {"p": post}, token=viewer.token
                )
            ).ok()

        viewers = {"bob": bob, "alice": alice, "carol": carol, "dave": dave}
        operations = [
            op
            for i, document in enumerate(DOCUMENTS)
            for op in ((f"once-{i}", document), (f"each-{i}", per_subscriber(document)))
        ]
        # Both protocols: their frames are written with different heads.
        protocols = {"bob": "graphql-transport-ws", "alice": "graphql-ws", "carol": "graphql-transport-ws"}
        opened = {
            name: await _subscribe_all(base, who, operations, protocols.get(name, "graphql-ws"))
            for name, who in viewers.items()
        }
        pumps = [
            asyncio.create_task(_pump(ws, received))
            for sockets, received in opened.values()
            for ws in sockets
        ]
        try:
            expected = len(viewers) * len(operations)
            for _ in range(200):
                if services.live.subscriber_count >= expected:
                    break
                await asyncio.sleep(0.05)
            assert services.live.subscriber_count == expected, {
                op: r[op] for _, r in opened.values() for op in r if r[op]
            }
            # The post's notice again, now that everyone listens (as a redone fan-out job sends
            # it), and its deletion: an ADDED and a REMOVED for every operation.
            bob_id = expect_global_id(bob.id, "User")
            post_id = expect_global_id(post, "Post")
            await services.notices.post_reached(bob_id, post_id, -1, MAX_ID, True)
            await services.notices.post_deleted(bob_id, post_id)
            for _ in range(400):
                if all(len(r[op]) >= 2 for _, r in opened.values() for op, _ in operations):
                    break
                await asyncio.sleep(0.05)
        finally:
            for task in pumps:
                task.cancel()
            for sockets, _ in opened.values():
                for ws in sockets:
                    await ws.close()

        for name, (_, received) in opened.items():
            for i, document in enumerate(DOCUMENTS):
                once, each = received[f"once-{i}"], received[f"each-{i}"]
                assert len(once) == len(each) == 2, (name, document, once, each)
                assert once == each, (name, document)
        # The per-viewer fields did differ, so equal answers were not equal by luck.
        flags = {name: r["once-2"][0]["data"]["homeFeedUpdates"]["post"] for name, (_, r) in opened.items()}
        assert flags["alice"] == {"liked": True, "author": {"f": True}}
        assert flags["carol"] == {"liked": False, "author": {"f": True}}
        assert flags["bob"] == {"liked": False, "author": {"f": False}}
        cursors = {r["once-0"][0]["data"]["homeFeedUpdates"]["cursor"] for _, r in opened.values()}
        assert len(cursors) == len(viewers)
        # Every rendered-once frame (an ADDED and a REMOVED per viewer and document) was written
        # straight to its socket, so it is that path the comparison covered.
        assert sum(written) == 2 * len(viewers) * len(DOCUMENTS)
