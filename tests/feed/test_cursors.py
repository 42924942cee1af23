"""Cursors: opaque, signed, scoped; anything altered or foreign is a client error."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st

from homefeed.feed.cursors import Cursors
from homefeed.feed.errors import InvalidInput

CURSORS = Cursors("cursor-test-secret-0123456789")
scopes = st.text(min_size=1, max_size=40)
positions = st.integers(min_value=0, max_value=2**63 - 1)


@given(scope=scopes, position=positions)
def test_round_trip(scope: str, position: int) -> None:
    cursor = CURSORS.encode(scope, position)
    assert cursor.isascii() and "=" not in cursor
    assert CURSORS.decode(scope, cursor) == position


@given(scope=scopes, other=scopes, position=positions)
def test_other_scope_is_rejected(scope: str, other: str, position: int) -> None:
    if scope == other:
        return
    with pytest.raises(InvalidInput):
        CURSORS.decode(other, CURSORS.encode(scope, position))


def test_other_key_is_rejected() -> None:
    cursor = Cursors("another-secret-0123456789").encode("home:1", 42)
    with pytest.raises(InvalidInput):
        CURSORS.decode("home:1", cursor)


@given(position=positions, index=st.integers(min_value=0), flip=st.integers(min_value=1, max_value=255))
def test_any_flipped_byte_is_rejected(position: int, index: int, flip: int) -> None:
    cursor = CURSORS.encode("home:7", position)
    raw = bytearray(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    raw[index % len(raw)] ^= flip
    tampered = base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
    with pytest.raises(InvalidInput):
        CURSORS.decode("home:7", tampered)


def test_forged_position_is_rejected() -> None:
    cursor = CURSORS.encode("home:7", 1000)
    raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    forged = raw.replace(b"|1000", b"|9999")
    with pytest.raises(InvalidInput):
        CURSORS.decode("home:7", base64.urlsafe_b64encode(forged).decode())


@pytest.mark.parametrize("cut", [1, 4, 10])
def test_truncated_is_rejected(cut: int) -> None:
    cursor = CURSORS.encode("home:7", 123456789)
    with pytest.raises(InvalidInput):
        CURSORS.decode("home:7", cursor[:-cut])


@pytest.mark.parametrize("garbage", ["", "a", "!!!!", "not a cursor", "====", "\u00e9t\u00e9", "A" * 5000])
def test_garbage_is_rejected(garbage: str) -> None:
    with pytest.raises(InvalidInput):
        CURSORS.decode("home:7", garbage)


@given(text=st.text(max_size=60))
def test_arbitrary_text_never_crashes(text: str) -> None:
    with contextlib.suppress(InvalidInput):
        CURSORS.decode("home:7", text)


@given(scope=scopes, position=positions, secret=st.text(min_size=1, max_size=80))
def test_cursors_are_hmac_sha256_so_ones_signed_by_hmac_digest_stay_valid(
    scope: str, position: int, secret: str
) -> None:
    # The MAC is computed from key states hashed once; it must be RFC 2104's HMAC-SHA256 exactly,
    # as hmac.digest signed cursors before (clients hold those across a deploy).
    cursors = Cursors(secret)
    key = hashlib.sha256(b"homefeed-cursor:" + secret.encode()).digest()
    payload = f"{scope}|{position}".encode()
    signed = payload + hmac.digest(key, payload, "sha256")[:8]
    issued = base64.urlsafe_b64encode(signed).rstrip(b"=").decode()
    assert cursors.encode(scope, position) == issued
    assert cursors.decode(scope, issued) == position
