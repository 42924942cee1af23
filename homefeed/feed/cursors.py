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


class Cursors:
    """Encodes and decodes cursors with one signing key."""

    def __init__(self, secret: str) -> None:
        self._key = hashlib.sha256(b"homefeed-cursor:" + secret.encode()).digest()

    def _mac(self, payload: bytes) -> bytes:
        # hmac.digest's one-shot path: a live event encodes a cursor per subscriber.
        return hmac.digest(self._key, payload, "sha256")[:_MAC_BYTES]

    def encode(self, scope: str, position: int) -> str:
        """The cursor for `position` (a post id) within `scope`."""
        payload = f"{scope}|{position}".encode()
        return base64.urlsafe_b64encode(payload + self._mac(payload)).rstrip(b"=").decode()

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
