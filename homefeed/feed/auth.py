"""Passwords (argon2, hashed off the event loop) and signed session tokens (JWT, HS256)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TypeVar

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from homefeed.feed.errors import InvalidInput, RateLimited, Unauthenticated
from homefeed.feed.gate import Gate, GateFull
from homefeed.feed.metrics import RATE_LIMITED

MIN_PASSWORD = 8
# argon2 accepts anything, but hashing megabytes on request is a denial-of-service lever.
MAX_PASSWORD = 256
# Verified tokens remembered per process (forgotten all at once past this many).
VERIFIED_TOKENS = 10_000


def check_password(password: str) -> str:
    """The password if acceptable, else InvalidInput saying why."""
    if len(password) < MIN_PASSWORD:
        raise InvalidInput(f"password must be at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise InvalidInput(f"password must be at most {MAX_PASSWORD} characters")
    return password


T = TypeVar("T")

# Seconds a caller refused by a full password queue is told to wait.
BUSY_RETRY_AFTER = 1


class Passwords:
    """argon2id hashing; the CPU-heavy work runs in a thread so the loop keeps serving.

    Each hash or verify costs a fraction of a second of CPU and tens of MiB (argon2's
    defaults), so at most `concurrency` run at once per process, decoy verifies of unknown
    handles included. Up to `queue` more callers wait for a slot: a short burst of honest
    log-ins is served a moment later instead of failing. Past that, callers are answered
    RATE_LIMITED at once: a flood gets a cheap refusal, never a growing line whose every
    member would time out anyway while holding a request open.
    """

    def __init__(
        self, hasher: PasswordHasher | None = None, *, concurrency: int = 2, queue: int = 16
    ) -> None:
        self._hasher = hasher or PasswordHasher()
        self._gate = Gate(concurrency, queue)
        # Verified against when a handle does not exist, so timing does not reveal which handles do.
        self._decoy = self._hasher.hash("decoy password, never matches")

    @property
    def gate(self) -> Gate:
        """The cap on concurrent argon2 work (for metrics and tests)."""
        return self._gate

    async def hash(self, password: str) -> str:
        """The argon2id hash of a password; RateLimited when the process is too busy hashing."""
        return await self._run(lambda: self._hasher.hash(password))

    async def verify(self, hashed: str | None, password: str) -> bool:
        """Whether password matches hashed; a None hash costs the same time and fails."""

        def check() -> bool:
            try:
                return self._hasher.verify(hashed or self._decoy, password) and hashed is not None
            except (VerificationError, InvalidHashError):
                return False

        return await self._run(check)

    async def _run(self, work: Callable[[], T]) -> T:
        try:
            await self._gate.acquire()
        except GateFull:
            RATE_LIMITED.labels("passwords").inc()
            raise RateLimited(
                "too many password checks in progress; retry in a second", retry_after=BUSY_RETRY_AFTER
            ) from None
        # The slot is given back when the thread finishes, not when the caller stops waiting:
        # a client that disconnects mid-hash must not free a slot while argon2 still runs.
        running = asyncio.ensure_future(asyncio.to_thread(work))
        running.add_done_callback(lambda _: self._gate.release())
        return await asyncio.shield(running)


class Tokens:
    """Issues and verifies bearer tokens naming a user id."""

    ALGORITHM = "HS256"

    def __init__(self, secret: str, ttl_seconds: int) -> None:
        self._secret = secret
        self._ttl = ttl_seconds
        self._verified: dict[str, tuple[int, float]] = {}

    def issue(self, user_id: int) -> str:
        """A signed token for user_id, valid for the configured lifetime."""
        now = int(time.time())
        claims = {"sub": str(user_id), "iat": now, "exp": now + self._ttl}
        return jwt.encode(claims, self._secret, algorithm=self.ALGORITHM)

    def verify(self, token: str) -> int:
        """The user id in a valid token; Unauthenticated if expired, tampered or malformed."""
        # A token that verified once verifies again until it expires: keep (user, expiry) per
        # token string, so a client's every request does not redo the HMAC and JSON decoding.
        known = self._verified.get(token)
        if known is not None:
            user_id, expires = known
            if time.time() < expires:
                return user_id
            del self._verified[token]
        user_id, expires = self._decode(token)
        if len(self._verified) >= VERIFIED_TOKENS:
            self._verified.clear()
        self._verified[token] = (user_id, expires)
        return user_id

    def _decode(self, token: str) -> tuple[int, float]:
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[self.ALGORITHM],
                options={"require": ["sub", "exp"]},
            )
            return int(claims["sub"]), float(claims["exp"])
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("token expired; log in again") from None
        except (jwt.InvalidTokenError, ValueError, TypeError):
            raise Unauthenticated("invalid token") from None
