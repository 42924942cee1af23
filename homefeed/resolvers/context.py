"""The per-request context every resolver receives."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from homefeed.feed.errors import Unauthenticated
from homefeed.feed.services import Services
from homefeed.loaders import Loaders, build

GONE = "the user of this token no longer exists"


@dataclass
class Context:
    services: Services
    token: str | None
    # The client's address as the rate limits count it (homefeed.feed.addresses).
    client_key: str
    # Set by the websocket transport from the connection_init payload.
    connection_params: dict[str, object] | None = None
    _viewer: int | None = field(default=None, init=False)
    _checked: bool = field(default=False, init=False)
    # The one look-up of the token's user, shared by every field that asks while it runs.
    _exists: asyncio.Future[Any] | None = field(default=None, init=False)
    _loaders: Loaders | None = field(default=None, init=False)

    async def viewer_id(self) -> int | None:
        """The authenticated user's id, None without a token; Unauthenticated for a bad one."""
        if not self._checked:
            if self.token is not None:
                user_id = self.services.tokens.verify(self.token)
                # Sibling fields ask at once: one look-up, answered to them in the order they
                # asked, so which field reports a gone user does not depend on which of several
                # reads came back first (the same request gave different error paths). Shielded:
                # a field cancelled while waiting must not cancel the look-up under the others.
                if self._exists is None:
                    self._exists = asyncio.ensure_future(build(self.services, None).users.load(user_id))
                try:
                    found = await asyncio.shield(self._exists)
                except Exception:
                    # A failed look-up (PostgreSQL away) is not kept: the next field to ask, or
                    # this websocket's next operation, looks again.
                    self._exists = None
                    raise
                if found is None:
                    raise Unauthenticated(GONE)
                self._viewer = user_id
            self._checked = True
        return self._viewer

    def claimed_viewer(self) -> int | None:
        """The user id the token names (signature and expiry checked); whether that user still
        exists is left to a read the request makes anyway (see vouch), unless already known."""
        if self._checked or self.token is None:
            return self._viewer
        return self.services.tokens.verify(self.token)

    def vouch(self, user_id: int) -> None:
        """A read on behalf of user_id has just found that user: no separate look-up is needed."""
        if not self._checked:
            self._viewer, self._checked = user_id, True

    async def require_viewer(self) -> int:
        """The authenticated user's id, or Unauthenticated."""
        viewer = await self.viewer_id()
        if viewer is None:
            raise Unauthenticated("sign in: send Authorization: Bearer <token>")
        return viewer

    def use_token(self, token: str | None) -> None:
        """Authenticate with this token from now on (websockets send it after the upgrade)."""
        self.token = token
        self._checked = False
        self._viewer = None
        self._exists = None
        self._loaders = None

    def forget_loaded(self) -> None:
        """Drop what this request has loaded so far: a mutation just changed it."""
        self._loaders = None

    async def loaders(self) -> Loaders:
        """This request's loaders, built on first use for the authenticated viewer."""
        if self._loaders is None:
            self._loaders = build(self.services, await self.viewer_id())
        return self._loaders

    async def loaders_or(self, via: Loaders | None) -> Loaders:
        """`via` if given (a live event's loaders, shared by its subscribers), else this request's."""
        return via if via is not None else await self.loaders()

    async def count_operation(self) -> None:
        """Count one query or subscription operation against the rate limits: the signed-in
        user's budget, else the client address's. One Redis round trip; RateLimited when over."""
        try:
            viewer = self.claimed_viewer()
        except Unauthenticated:
            # The operation fails on its token anyway; the address pays for the attempt.
            viewer = None
        await self.services.limits.query(viewer, self.client_key)

    async def require_writer(self) -> int:
        """The authenticated user's id, once the rate limit on writes lets them write."""
        viewer = await self.require_viewer()
        await self.services.limits.write(viewer)
        return viewer
