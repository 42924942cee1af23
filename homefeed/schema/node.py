"""Relay global ids and the Node interface."""

from __future__ import annotations

import base64
import binascii
from functools import lru_cache
from typing import cast

import strawberry

from homefeed.feed.errors import InvalidInput

MAX_ID_LENGTH = 100


# Remembered: a process sends the same ids again and again (the authors a viewer follows, recent
# posts on many followers' pages), and a hit costs a quarter of encoding one. 32,768 entries of
# a small tuple and a short string: a few MB.
@lru_cache(maxsize=32768)
def to_global_id(type_name: str, pk: int) -> strawberry.ID:
    """The opaque global id of an object: base64 of 'Type:pk'."""
    # binascii directly, and a cast rather than a call of the NewType: a feed page makes two
    # ids per post, and base64.b64encode's wrapper and ID's call were half of each one's cost.
    return cast("strawberry.ID", binascii.b2a_base64(f"{type_name}:{pk}".encode(), newline=False).decode())


def parse_global_id(global_id: str) -> tuple[str, int]:
    """(type name, primary key) of a global id; InvalidInput if malformed."""
    try:
        if len(global_id) > MAX_ID_LENGTH:
            raise ValueError
        type_name, _, pk = base64.b64decode(global_id, validate=True).decode().partition(":")
        value = int(pk)
        if not type_name or not 0 < value < 2**63 or str(value) != pk:
            raise ValueError
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidInput(f"malformed id {global_id[:MAX_ID_LENGTH]!r}") from None
    return type_name, value


def expect_global_id(global_id: str, type_name: str) -> int:
    """The primary key of a global id that must name a `type_name`; InvalidInput otherwise."""
    got, pk = parse_global_id(global_id)
    if got != type_name:
        raise InvalidInput(f"expected a {type_name} id, got a {got} id")
    return pk


@strawberry.interface(description="An object with a global id (Relay).")
class Node:
    id: strawberry.ID
