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
    code = "RATE_LIMITED"
