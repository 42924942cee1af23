"""The API as the live bench speaks to it: GraphQL over plain HTTP, and the websocket protocols."""

from __future__ import annotations

import asyncio
import base64
import urllib.error
import urllib.request
from typing import Any

import orjson

from homefeed.bench.errors import BenchError

TRANSPORT_WS = "graphql-transport-ws"
LEGACY_WS = "graphql-ws"
SUBSCRIPTION = "subscription { homeFeedUpdates { kind postId cursor post { id text } } }"
# The same answer, but a document with a directive is executed per subscriber: the baseline of
# render-once (`--per-subscriber`).
PER_SUBSCRIBER = (
    "subscription { homeFeedUpdates { ... @include(if: true) { kind postId cursor post { id text } } } }"
)
CREATE_POST = "mutation($text: String!) { createPost(text: $text) { id } }"
DELETE_POST = "mutation($id: ID!) { deletePost(id: $id) }"


def post_pk(global_id: str) -> int:
    """The post id inside a Relay global id (base64 of 'Post:<id>')."""
    return int(base64.b64decode(global_id).decode().rpartition(":")[2])


def http_json(url: str, body: dict[str, Any] | None, token: str | None, timeout: float) -> tuple[int, Any]:
    """A blocking HTTP request (the bench needs no HTTP client library): status and parsed JSON."""
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = orjson.dumps(body) if body is not None else None
    request = urllib.request.Request(url, data=data, headers=headers, method="POST" if data else "GET")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, orjson.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, orjson.loads(exc.read() or b"null")


async def graphql(url: str, query: str, variables: dict[str, Any], token: str) -> dict[str, Any]:
    status, doc = await asyncio.to_thread(
        http_json, url + "/graphql", {"query": query, "variables": variables}, token, 30.0
    )
    if status != 200 or not isinstance(doc, dict) or doc.get("errors"):
        raise BenchError(f"GraphQL request failed ({status}): {doc!r}")
    data: dict[str, Any] = doc["data"]
    return data
