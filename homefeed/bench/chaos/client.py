"""GraphQL over HTTP as the chaos run speaks it: every call answers, with its failure named."""

from __future__ import annotations

import asyncio
import base64
import http.client
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import orjson

FEED = """query ChaosFeed($first: Int, $after: String) { homeFeed(first: $first, after: $after) {
  edges { cursor node { id } } pageInfo { hasNextPage endCursor } } }"""
CREATE_POST = "mutation ChaosPost($text: String!) { createPost(text: $text) { id } }"
DELETE_POST = "mutation ChaosDelete($id: ID!) { deletePost(id: $id) }"
LIKE_POST = "mutation ChaosLike($id: ID!) { likePost(id: $id) { id } }"
FOLLOW = "mutation ChaosFollow($u: ID!) { follow(userId: $u) { id } }"
UNFOLLOW = "mutation ChaosUnfollow($u: ID!) { unfollow(userId: $u) { id } }"
BLOCK = "mutation ChaosBlock($u: ID!) { block(userId: $u) { id } }"
SUBSCRIPTION = "subscription ChaosLive { homeFeedUpdates { kind postId } }"


def global_id(type_name: str, pk: int) -> str:
    """The Relay global id of an object."""
    return base64.b64encode(f"{type_name}:{pk}".encode()).decode()


def pk_of(gid: str) -> int:
    """The primary key inside a Relay global id."""
    return int(base64.b64decode(gid).decode().rpartition(":")[2])


@dataclass(frozen=True)
class Reply:
    """A call's outcome: data, or the failure ('connection', 'timeout', 'http 502', 'INTERNAL', ...)."""

    data: dict[str, Any] | None
    failure: str | None = None

    @property
    def ok(self) -> bool:
        return self.failure is None


class Client:
    """Blocking urllib calls on a thread pool of its own (no HTTP client library to depend on)."""

    def __init__(self, threads: int = 24, timeout: float = 10.0) -> None:
        self._threads = ThreadPoolExecutor(threads, thread_name_prefix="chaos-http")
        self.timeout = timeout

    async def call(self, url: str, query: str, variables: dict[str, Any], token: str) -> Reply:
        """One GraphQL request against the API at `url`."""
        loop = asyncio.get_running_loop()
        body = {"query": query, "variables": variables}
        return await loop.run_in_executor(self._threads, _post, url + "/graphql", body, token, self.timeout)

    def close(self) -> None:
        self._threads.shutdown(wait=False, cancel_futures=True)


def _post(url: str, body: dict[str, Any], token: str, timeout: float) -> Reply:
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
    request = urllib.request.Request(url, data=orjson.dumps(body), headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            doc = orjson.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return Reply(None, f"http {exc.code}")
    except TimeoutError:
        return Reply(None, "timeout")
    # A server killed mid-response breaks the body (IncompleteRead, RemoteDisconnected):
    # the request's outcome is unknown, as with a dropped connection.
    except (OSError, http.client.HTTPException, orjson.JSONDecodeError) as exc:
        reason = getattr(exc, "reason", exc)
        return Reply(None, "timeout" if isinstance(reason, TimeoutError) else "connection")
    if not isinstance(doc, dict):
        return Reply(None, "bad response")
    if doc.get("errors"):
        code = (doc["errors"][0].get("extensions") or {}).get("code") or "error"
        return Reply(doc.get("data"), str(code))
    return Reply(doc["data"])
