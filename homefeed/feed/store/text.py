"""What PostgreSQL's text type can hold: checked before a value is sent, so a client's odd input is
that client's error (BAD_USER_INPUT), never a server error."""

from __future__ import annotations

from homefeed.feed.errors import InvalidInput


def storable(value: str) -> bool:
    """Whether PostgreSQL can store this string: no NUL character, no lone UTF-16 surrogate."""
    if "\x00" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_storable(value: str, what: str) -> str:
    """The value, or InvalidInput naming the field when PostgreSQL could not store it."""
    if not storable(value):
        raise InvalidInput(f"{what} must not contain NUL characters or unpaired surrogates")
    return value
