"""Passwords (argon2, hashed off the event loop) and signed session tokens (JWT, HS256)."""

from __future__ import annotations

import asyncio
import time

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from homefeed.feed.errors import InvalidInput, Unauthenticated

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


class Passwords:
    """argon2id hashing; the CPU-heavy work runs in a thread so the loop keeps serving."""

    def __init__(self, hasher: PasswordHasher | None = None) -> None:
        self._hasher = hasher or PasswordHasher()
        # Verified against when a handle does not exist, so timing does not reveal which handles do.
        self._decoy = self._hasher.hash("decoy password, never matches")

    async def hash(self, password: str) -> str:
        """The argon2id hash of a password."""
        return await asyncio.to_thread(self._hasher.hash, password)

    async def verify(self, hashed: str | None, password: str) -> bool:
        """Whether password matches hashed; a None hash costs the same time and fails."""

        def check() -> bool:
            try:
                return self._hasher.verify(hashed or self._decoy, password) and hashed is not None
            except (VerificationError, InvalidHashError):
                return False

        return await asyncio.to_thread(check)


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
