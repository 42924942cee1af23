"""A small GraphQL client for tests: the app in-process over httpx, plus helpers for common steps."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx

from homefeed.app import create_app
from homefeed.feed.services import Services


@dataclass
class Result:
    status: int
    data: Any
    errors: list[dict[str, Any]] = field(default_factory=list)

    @property
    def codes(self) -> list[str]:
        """The extensions.code of each error."""
        return [e.get("extensions", {}).get("code", "") for e in self.errors]

    def ok(self) -> Any:
        """The data, asserting there were no errors."""
        assert not self.errors, self.errors
        return self.data


@dataclass
class Account:
    token: str
    id: str
    handle: str


class Api:
    def __init__(self, client: httpx.AsyncClient) -> None:
        self.http = client

    @classmethod
    @asynccontextmanager
    async def running(
        cls, services: Services, *, fast_path: bool = True, client: tuple[str, int] = ("127.0.0.1", 123)
    ) -> AsyncIterator[Api]:
        """The app over `services`, as seen from `client` (the socket peer's address and port)."""
        app = create_app(services=services, fast_path=fast_path)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app, client=client)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
                yield cls(http)

    async def gql(
        self, query: str, variables: dict[str, Any] | None = None, *, token: str | None = None
    ) -> Result:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = await self.http.post(
            "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
        )
        body = response.json()
        return Result(response.status_code, body.get("data"), body.get("errors") or [])

    async def sign_up(self, handle: str, password: str = "password123") -> Account:
        data = (
            await self.gql(
                "mutation($h: String!, $p: String!) "
                "{ signUp(handle: $h, password: $p) { token user { id } } }",
                {"h": handle, "p": password},
            )
        ).ok()
        return Account(data["signUp"]["token"], data["signUp"]["user"]["id"], handle)

    async def post(self, who: Account, text: str) -> str:
        data = (
            await self.gql(
                "mutation($t: String!) { createPost(text: $t) { id } }", {"t": text}, token=who.token
            )
        ).ok()
        return str(data["createPost"]["id"])

    async def act(self, who: Account, verb: str, target: Account) -> Result:
        """follow / unfollow / block / unblock / mute / unmute."""
        return await self.gql(
            f"mutation($u: ID!) {{ {verb}(userId: $u) {{ id viewerFollows followerCount }} }}",
            {"u": target.id},
            token=who.token,
        )

    async def feed(self, who: Account, first: int = 20, after: str | None = None) -> Result:
        return await self.gql(
            """query($f: Int, $a: String) { homeFeed(first: $f, after: $a) {
                 edges { cursor node { id text author { handle } likeCount viewerHasLiked } }
                 nodes { id }
                 pageInfo { hasNextPage hasPreviousPage startCursor endCursor } } }""",
            {"f": first, "a": after},
            token=who.token,
        )

    async def whole_feed(self, who: Account, first: int = 20) -> list[str]:
        """Every post id in the feed, following cursors to the end."""
        ids: list[str] = []
        after = None
        while True:
            conn = (await self.feed(who, first, after)).ok()["homeFeed"]
            ids += [e["node"]["id"] for e in conn["edges"]]
            if not conn["pageInfo"]["hasNextPage"]:
                return ids
            after = conn["pageInfo"]["endCursor"]
