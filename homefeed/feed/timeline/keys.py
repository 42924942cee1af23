"""Redis key names. Every key of one user shares a hash tag, so it lives in one Redis Cluster slot."""

from __future__ import annotations

# Post ids are stored as 7-byte big-endian integers (ids < 2**53 fit): fixed width, so
# byte order is numeric order and a full 800-entry timeline is ~5.6 KB (see timelines.py).
ID_BYTES = 7


def encode_id(post_id: int) -> bytes:
    """A post id as stored in a list."""
    return post_id.to_bytes(ID_BYTES, "big")


def decode_id(member: bytes) -> int:
    """The post id of a stored entry."""
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
