"""Redis key names. Every key of one user shares a hash tag, so it lives in one Redis Cluster slot."""

from __future__ import annotations

# Timeline members are post ids as 7-byte big-endian strings (ids < 2**53 fit), all with
# score 0: lexicographic order is then numeric order, and the listpack encoding stores
# each entry in ~13 bytes instead of ~100 for a skiplist of decimal strings and doubles.
ID_BYTES = 7
# Marks a list as built by a rebuild; sorts above every id.
SENTINEL = b"\xff"
# Marks a list as holding all history (nothing older exists); sorts below every id and
# decodes to 0, so the first trim of a full list removes it first.
BOTTOM = b"\x00"


def encode_id(post_id: int) -> bytes:
    """A post id as a timeline member."""
    return post_id.to_bytes(ID_BYTES, "big")


def decode_id(member: bytes) -> int:
    """The post id of a timeline member."""
    return int.from_bytes(member, "big")


class Keys:
    """Key names under one prefix."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def timeline(self, user_id: int) -> str:
        """A user's home timeline: ids of pushed posts, newest last in lexicographic order."""
        return f"{self.prefix}:{{{user_id}}}:tl"

    def recent(self, author_id: int) -> str:
        """A pulled author's recent posts."""
        return f"{self.prefix}:{{{author_id}}}:recent"

    def rebuild_lock(self, user_id: int) -> str:
        """Single-flight lock for rebuilding a user's timeline."""
        return f"{self.prefix}:{{{user_id}}}:rebuild"

    def recent_lock(self, author_id: int) -> str:
        """Single-flight lock for rebuilding an author's recent list."""
        return f"{self.prefix}:{{{author_id}}}:rebuild-recent"
