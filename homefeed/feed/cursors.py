"""Opaque keyset cursors: a scope and a position, signed so they cannot be forged or reused elsewhere.

A cursor names the connection it belongs to (the scope, e.g. one viewer's home
feed or one author's posts). Handing it to another connection, or altering it,
is a client error rather than a silently wrong page.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

from homefeed.feed.errors import InvalidInput

_MAC_BYTES = 8
# SHA-256's block size, and HMAC's pads (RFC 2104).
_BLOCK = 64
_IPAD = bytes(x ^ 0x36 for x in range(256))
_OPAD = bytes(x ^ 0x5C for x in range(256))
# Standard base64 to its URL-safe alphabet (RFC 4648 section 5), as base64.urlsafe_b64encode maps it.
_URLSAFE = bytes.maketrans(b"+/", b"-_")


class Cursors:
    """Encodes and decodes cursors with one signing key."""

    def __init__(self, secret: str) -> None:
        self._key = hashlib.sha256(b"homefeed-cursor:" + secret.encode()).digest()
        # HMAC-SHA256 with the padded key's block hashed once, here: a MAC is then two copies
        # and two small updates. hmac.digest sets the key up again on every call, and took about
        # three times as long; a feed page signs a cursor per post, a live event one per subscriber.
        padded = self._key.ljust(_BLOCK, b"\0")
        self._inner = hashlib.sha256(padded.translate(_IPAD))
        self._outer = hashlib.sha256(padded.translate(_OPAD))

    def _mac(self, payload: bytes) -> bytes:
        inner = self._inner.copy()
        inner.update(payload)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()[:_MAC_BYTES]

    def encode(self, scope: str, position: int) -> str:
        """The cursor for `position` (a post id) within `scope`."""
        return self.encode_ascii(scope, position).decode()

    def encode_ascii(self, scope: str, position: int) -> bytes:
        """`encode`'s cursor as ASCII bytes: what a live event's frame splices in per subscriber,
        quoted as it is (base64url needs no JSON escaping)."""
        payload = f"{scope}|{position}".encode()
        # base64.urlsafe_b64encode's own steps, without its two wrapper frames (a cursor per post).
        encoded = binascii.b2a_base64(payload + self._mac(payload), newline=False)
        return encoded.translate(_URLSAFE).rstrip(b"=")

    def decode(self, scope: str, cursor: str) -> int:
        """The position in a cursor of `scope`; InvalidInput for anything malformed or foreign."""
        got_scope, position = self.decode_under(scope, cursor)
        if got_scope != scope:
            raise InvalidInput("cursor belongs to another list")
        return position

    def decode_under(self, prefix: str, cursor: str) -> tuple[str, int]:
        """The scope and position of a cursor whose scope starts with `prefix` (a family of
        lists, such as one viewer's ranked snapshots); InvalidInput for anything else."""
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        except (binascii.Error, ValueError):
            raise InvalidInput("malformed cursor") from None
        payload, mac = raw[:-_MAC_BYTES], raw[-_MAC_BYTES:]
        if len(raw) <= _MAC_BYTES or not hmac.compare_digest(mac, self._mac(payload)):
            raise InvalidInput("malformed cursor")
        got_scope, _, position = payload.decode(errors="replace").rpartition("|")
        if not got_scope.startswith(prefix):
            raise InvalidInput("cursor belongs to another list")
        return got_scope, int(position)
