"""Domain errors. Each carries a stable code; the API layer maps it to its own error format."""

from __future__ import annotations


class FeedError(Exception):
    """An error the caller caused or may act on; its message is safe to show."""

    code = "BAD_USER_INPUT"


class InvalidInput(FeedError):
    code = "BAD_USER_INPUT"


class NotFound(FeedError):
    code = "NOT_FOUND"


class Forbidden(FeedError):
    code = "FORBIDDEN"


class Unauthenticated(FeedError):
    code = "UNAUTHENTICATED"


class RateLimited(FeedError):
    """Too many requests; `retry_after` is how many whole seconds until one would be let through."""

    code = "RATE_LIMITED"

    def __init__(self, message: str, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = max(1, retry_after)

    def __reduce__(self) -> tuple[object, ...]:
        # Pickled (across processes) with its retry_after, not just its message.
        return (type(self), (str(self), self.retry_after))
