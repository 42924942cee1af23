"""Every rate limit the API applies: who is counted, in which bucket, over which window.

Anonymous queries count per client address, signed-in queries and writes per user,
sign-ups per address, log-ins per (address, handle) and per address. Log-in never
counts per handle alone: an attacker elsewhere can only spend their own address's
budget, never lock the handle's owner out. Each call is one Redis round trip.
"""

from __future__ import annotations

from collections.abc import Callable

from homefeed.feed.config import Settings
from homefeed.feed.errors import RateLimited
from homefeed.feed.metrics import RATE_LIMITED
from homefeed.feed.ratelimit import Bucket, RateLimiter
from homefeed.feed.redis_client import RedisClient
from homefeed.feed.store.users import HANDLE

QUERY_WINDOW = 60
WRITE_WINDOW = 60
LOG_IN_WINDOW = 15 * 60
SIGN_UP_WINDOW = 60 * 60
# The bucket of handles no account can have: guessing among them counts together.
NO_SUCH_HANDLE = "-"


class Limits:
    """The API's rate limits over one Redis, from settings (a limit of 0 switches one off)."""

    def __init__(
        self, redis: RedisClient, settings: Settings, *, clock: Callable[[], float] | None = None
    ) -> None:
        self._limiter = RateLimiter(redis, settings.redis_prefix, clock=clock)
        self._query = Bucket("q", settings.query_rate_limit, QUERY_WINDOW)
        self._anonymous = Bucket("q", settings.anonymous_rate_limit, QUERY_WINDOW)
        self._write = Bucket("", settings.rate_limit_per_minute, WRITE_WINDOW)
        self._log_in_address = Bucket("login", settings.log_in_address_limit, LOG_IN_WINDOW)
        self._log_in = settings.log_in_limit
        self._sign_up = Bucket("signup", settings.sign_up_limit, SIGN_UP_WINDOW)

    async def query(self, viewer: int | None, address: str) -> None:
        """Count one query (or subscription) operation: the viewer's if signed in, else the address's."""
        if viewer is not None:
            await self._hit("query", f"u:{viewer}", self._query)
        else:
            await self._hit("anonymous", _address(address), self._anonymous)

    async def write(self, viewer: int) -> None:
        """Count one write (mutation field) by a signed-in user."""
        await self._hit("write", f"w:{viewer}", self._write)

    async def log_in(self, address: str, handle: str) -> None:
        """Count one log-in attempt for `handle` (already normalized, as the look-up uses it)
        from `address`: both the pair's bucket and the address's bucket."""
        name = handle if HANDLE.match(handle) else NO_SUCH_HANDLE
        pair = Bucket(f"login:{name}", self._log_in, LOG_IN_WINDOW)
        await self._hit("log_in", _address(address), pair, self._log_in_address)

    async def sign_up(self, address: str) -> None:
        """Count one sign-up attempt from `address`."""
        await self._hit("sign_up", _address(address), self._sign_up)

    async def _hit(self, label: str, subject: str, *buckets: Bucket) -> None:
        try:
            await self._limiter.hit_all(subject, buckets)
        except RateLimited:
            RATE_LIMITED.labels(label).inc()
            raise


def _address(address: str) -> str:
    # The subject is a Redis hash tag: braces would cut it short (client addresses have none,
    # but this is where a key is built, so it is where that is made certain).
    return "a:" + address.replace("{", "(").replace("}", ")")
